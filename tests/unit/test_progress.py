"""Workload metrics → status.progress (pure): what is unknown stays absent, generation percent from work done."""

from __future__ import annotations

from labrador_operator.controller import progress

SDG_TEXT = """# TYPE labrador_sdg_samples_generated gauge
labrador_sdg_samples_generated 4.0
labrador_sdg_samples_target 12.0
labrador_sdg_output_tokens_per_second 80.5
labrador_sdg_eta_seconds NaN
labrador_sdg_work_fraction 0.25
labrador_sdg_stage_info{stage="faithfulness"} 1.0
labrador_sdg_stage_info{stage="qa"} 0.0
"""


def test_an_unknown_eta_is_left_out_not_zero() -> None:
    shard = progress.parse(SDG_TEXT, progress.SDG)
    assert shard == {
        "samples": 4,
        "targetSamples": 12,
        "outputTokensPerSecond": 80.5,
        "workFraction": 0.25,
        "stage": "faithfulness",
    }
    out = progress.finish(progress.sum_shards([shard]), 25.0, "2026-12-01T00:00:00Z")
    assert "etaSeconds" not in out and "eta" not in out and "workFraction" not in out
    assert out["percent"] == 25


def test_generation_percent_counts_work_of_every_shard() -> None:
    a = {"workFraction": 0.5, "samples": 0, "targetSamples": 10}
    b = {"workFraction": 0.1, "samples": 1, "targetSamples": 10}
    # 4 shards: two running (0.5, 0.1), one finished (1.0), one not reporting yet (0)
    assert progress.sdg_percent([a, b], total=4, finished=1) == 100.0 * 1.6 / 4
    assert progress.sdg_percent([{"workFraction": 1.7}], total=1, finished=0) == 100.0  # clamped
    # a workload without the fraction: samples over target, as before
    assert progress.sdg_percent([{"samples": 3, "targetSamples": 12}], total=1, finished=0) == 25.0
    assert progress.sdg_percent([{"samples": 3}], total=1, finished=0) is None


def test_a_field_gone_unknown_is_deleted_by_the_next_write() -> None:
    before = {"step": 10, "totalSteps": 10, "etaSeconds": 0, "eta": "0s", "loss": 1.5, "updated": "t0"}
    # a new phase started: step 0 of 20, no loss or ETA yet (NaN gauges)
    now = progress.finish({"step": 0, "totalSteps": 20}, 50.0, "t1", before)
    assert now["etaSeconds"] is None and now["eta"] is None and now["loss"] is None  # merge patch: null deletes
    assert progress.changed(before, now)
    # once written, the same sample is no change (None fields compare as absent)
    assert not progress.changed(now, progress.finish({"step": 0, "totalSteps": 20}, 50.0, "t2", now))
