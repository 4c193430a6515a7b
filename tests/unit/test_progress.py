"""Workload metrics → status.progress (pure): what is unknown stays absent, generation percent from work done."""

from __future__ import annotations

import pytest

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


@pytest.mark.parametrize(
    ("text", "names", "expected"),
    [
        pytest.param("labrador_train_step 7\nlabrador_train_total_steps 20\n", progress.TRAIN,
                     {"step": 7, "totalSteps": 20}, id="integers"),
        pytest.param("labrador_train_loss 1.23456789\nlabrador_train_learning_rate 2e-05\n", progress.TRAIN,
                     {"loss": 1.234568, "learningRate": 2e-05}, id="floats-rounded"),
        pytest.param("labrador_train_loss -0.5\n", progress.TRAIN, {"loss": -0.5}, id="a-negative-loss-is-kept"),
        pytest.param("labrador_train_step -1\nlabrador_train_tokens_per_second -3\n", progress.TRAIN, {},
                     id="other-negatives-dropped"),
        pytest.param("labrador_train_eta_seconds NaN\nlabrador_train_loss +Inf\n", progress.TRAIN, {},
                     id="nan-and-inf-dropped"),
        pytest.param("labrador_train_step 3.9\n", progress.TRAIN, {"step": 3}, id="integer-fields-truncated"),
        pytest.param("labrador_train_resumed_from_step 12\n", progress.TRAIN, {"resumedFromStep": 12}, id="resumed"),
        pytest.param("labrador_train_resumed_from_step NaN\n", progress.TRAIN, {}, id="not-resumed"),
        pytest.param("python_gc_objects_collected_total 10\nlabrador_train_epoch 1\n", progress.TRAIN,
                     {"epoch": 1.0}, id="unknown-families-ignored"),
        pytest.param("labrador_sdg_samples_generated 5\n", progress.TRAIN, {}, id="other-kinds-names-ignored"),
        pytest.param('labrador_sdg_stage_info{stage="judge"} 1\nlabrador_sdg_stage_info{stage="qa"} 0\n',
                     progress.SDG, {"stage": "judge"}, id="the-stage-set-to-1"),
        pytest.param("not a metric line {{{\n", progress.TRAIN, {}, id="garbage"),
        pytest.param("", progress.SDG, {}, id="empty"),
    ],
)  # fmt: skip
def test_parse(text: str, names: dict[str, str], expected: dict[str, object]) -> None:
    assert progress.parse(text, names) == expected


@pytest.mark.parametrize(
    ("done", "phases", "step", "total", "percent"),
    [
        (0, 2, None, None, 0.0),
        (0, 2, 5, 10, 25.0),
        (1, 2, 0, 20, 50.0),
        (1, 2, 20, 20, 100.0),
        (2, 2, None, None, 100.0),
        (0, 0, 1, 2, None),  # no phases: nothing to say
        (0, 1, 3, 0, 0.0),  # total unknown yet
    ],
)
def test_train_percent(done: int, phases: int, step: int | None, total: int | None, percent: float | None) -> None:
    assert progress.train_percent(done, phases, step, total) == percent


@pytest.mark.parametrize(
    ("shards", "expected"),
    [
        ([], {}),
        ([{"samples": 2, "targetSamples": 5, "outputTokensPerSecond": 1.1111, "etaSeconds": 30}],
         {"samples": 2, "targetSamples": 5, "outputTokensPerSecond": 1.111, "etaSeconds": 30}),
        ([{"samples": 2, "etaSeconds": 30, "stage": "qa"}, {"samples": 3, "etaSeconds": 90}],
         {"samples": 5, "etaSeconds": 90, "stage": "qa"}),  # the slowest shard's ETA
        ([{"outputTokensPerSecond": 10.0}, {"outputTokensPerSecond": 2.5}], {"outputTokensPerSecond": 12.5}),
    ],
)  # fmt: skip
def test_sum_shards(shards: list[dict[str, object]], expected: dict[str, object]) -> None:
    assert progress.sum_shards(shards) == expected
