"""Workload metrics → status.progress. Parsing is pure; fetching is one small HTTP GET with a short timeout.

Names the workloads serve (prometheus-client gauges, documented in the README):

- training (rank 0): ``labrador_train_step``, ``labrador_train_total_steps``, ``labrador_train_epoch``,
  ``labrador_train_loss``, ``labrador_train_learning_rate``, ``labrador_train_tokens_per_second``,
  ``labrador_train_eta_seconds``
- generation (every shard): ``labrador_sdg_samples_generated``, ``labrador_sdg_samples_target``,
  ``labrador_sdg_output_tokens_per_second``, ``labrador_sdg_eta_seconds``, ``labrador_sdg_work_fraction``,
  ``labrador_sdg_stage_info{stage=...}``

A gauge the workload sets to NaN (an ETA before there is a rate) is left out, so status shows no ETA rather than 0s.
"""

from __future__ import annotations

import math
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from labrador_operator.reconcile.plan import human_duration

TRAIN = {
    "labrador_train_step": "step",
    "labrador_train_total_steps": "totalSteps",
    "labrador_train_epoch": "epoch",
    "labrador_train_loss": "loss",
    "labrador_train_learning_rate": "learningRate",
    "labrador_train_tokens_per_second": "tokensPerSecond",
    "labrador_train_eta_seconds": "etaSeconds",
    "labrador_train_resumed_from_step": "resumedFromStep",
}
SDG = {
    "labrador_sdg_samples_generated": "samples",
    "labrador_sdg_samples_target": "targetSamples",
    "labrador_sdg_output_tokens_per_second": "outputTokensPerSecond",
    "labrador_sdg_eta_seconds": "etaSeconds",
    "labrador_sdg_work_fraction": "workFraction",  # → percent (not a status field itself)
}
INTEGER = {"step", "totalSteps", "etaSeconds", "samples", "targetSamples", "resumedFromStep"}


def fetch(ip: str, port: int, timeout: float = 2.0) -> str | None:
    """The pod's /metrics text, or None when it does not answer (not started yet, restarting)."""
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/metrics", timeout=timeout) as r:
            return r.read(1_000_000).decode("utf-8", errors="replace")
    except OSError:
        return None


def parse(text: str, names: dict[str, str]) -> dict[str, Any]:
    """Known gauges → progress fields; unknown, NaN and negative values are ignored; `*_stage_info` → stage."""
    out: dict[str, Any] = {}
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError:
        return out
    for fam in families:
        for sample in fam.samples:
            if sample.name == "labrador_sdg_stage_info" and sample.value == 1:
                out["stage"] = str(sample.labels.get("stage", ""))[:64]
            field = names.get(sample.name)
            if field is None or math.isnan(sample.value) or math.isinf(sample.value):
                continue
            value = sample.value
            if field != "loss" and value < 0:
                continue
            out[field] = int(value) if field in INTEGER else round(float(value), 6)
    return out


def sum_shards(shards: list[dict[str, Any]]) -> dict[str, Any]:
    """Generation progress over all shard pods: samples and rates add up, ETA is the slowest shard's."""
    if not shards:
        return {}
    out: dict[str, Any] = {}
    for key in ("samples", "targetSamples", "outputTokensPerSecond"):
        vals = [s[key] for s in shards if key in s]
        if vals:
            out[key] = round(sum(vals), 3) if key == "outputTokensPerSecond" else sum(vals)
    etas = [s["etaSeconds"] for s in shards if "etaSeconds" in s]
    if etas:
        out["etaSeconds"] = max(etas)
    stages = [s["stage"] for s in shards if s.get("stage")]
    if stages:
        out["stage"] = stages[0]
    return out


def sdg_percent(shards: list[dict[str, Any]], total: int, finished: int) -> float | None:
    """Generation percent over all ``total`` shards: each running shard's share of its work done (the workload's
    estimate, which moves within every stage, judges included), ``finished`` shards counted whole, shards not yet
    reporting as 0. Workloads that report no work fraction: samples over target."""
    fractions = [min(1.0, max(0.0, float(s["workFraction"]))) for s in shards if "workFraction" in s]
    if fractions and total > 0:
        return 100.0 * (sum(fractions) + finished) / total
    samples = sum(s.get("samples", 0) for s in shards)
    target = sum(s.get("targetSamples", 0) for s in shards)
    return 100.0 * samples / target if target else None


def finish(
    progress: dict[str, Any], percent: float | None, now: str, previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The status.progress to write. A field the last write had and this sample lacks (an ETA gone unknown when a
    new training phase starts) is set to None, which the merge patch deletes — no stale ETA or loss lingers."""
    out = dict(progress)
    if percent is not None:
        out["percent"] = max(0, min(100, int(percent)))
    if "etaSeconds" in out:
        out["eta"] = human_duration(out["etaSeconds"])
    out["updated"] = now
    for key, value in (previous or {}).items():
        if value is not None and key not in out:
            out[key] = None
    return out


def train_percent(done_phases: int, phases: int, step: int | None, total: int | None) -> float | None:
    if phases <= 0:
        return None
    frac = (step / total) if step is not None and total else 0.0
    return 100.0 * (done_phases + min(frac, 1.0)) / phases


def changed(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Worth a write: anything but the sampling time differs."""
    strip = {k: v for k, v in (old or {}).items() if k != "updated" and v is not None}
    return strip != {k: v for k, v in new.items() if k != "updated" and v is not None}
