"""Best-checkpoint selection: score every HF checkpoint of a phase with the evaluation's aggregate score, copy the
best to ``selectedDir`` (and ``exportDir``) atomically."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from labrador_trainer.evaluate.config import SelectConfig
from labrador_trainer.evaluate.pipeline import InputError, Plan, judge_all, score_model
from labrador_trainer.evaluate.report import fit, scores, summarize
from labrador_trainer.files import atomic_write_json

log = logging.getLogger("labrador_trainer.evaluate")

_SAMPLES = re.compile(r"^samples_(\d+)$")


def checkpoints(checkpoints_dir: str | Path, phase: str) -> list[Path]:
    """Committed HF checkpoints of ``phase`` in training order: ``samples_<N>`` by N, then ``final``."""
    root = Path(checkpoints_dir) / "phases" / phase
    found: list[tuple[float, Path]] = []
    for d in root.iterdir() if root.is_dir() else []:
        if not (d / "config.json").is_file():
            continue
        m = _SAMPLES.match(d.name)
        if m:
            found.append((int(m.group(1)), d))
        elif d.name == "final":
            found.append((float("inf"), d))
    return [d for _, d in sorted(found)]


def copy_atomic(src: Path, dest: Path) -> None:
    """Copy ``src`` to a temp dir beside ``dest``, then rename it into place: readers see the old or the new
    model, never part of one."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".tmp-{dest.name}-{os.getpid()}")
    old = dest.with_name(f".old-{dest.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def best(scored: dict[str, float | None], order: list[str]) -> str:
    """The highest score; ties (and no scores at all) go to the later checkpoint, ``final`` last."""
    rank = {name: i for i, name in enumerate(order)}
    return max(order, key=lambda n: (scored[n] if scored[n] is not None else float("-inf"), rank[n]))


def run_select(cfg: SelectConfig) -> dict[str, Any]:
    """Score, select, copy; returns the termination summary and writes ``<checkpointsDir>/selection.json``."""
    ckpts = checkpoints(cfg.checkpoints_dir, cfg.phase)
    if not ckpts:
        raise InputError(f"no checkpoints (samples_<N>/ or final/ with config.json) under "
                         f"{Path(cfg.checkpoints_dir) / 'phases' / cfg.phase}")  # fmt: skip
    plan = Plan.build(cfg, [cfg.data] if cfg.data else [], examples=False)
    models = [score_model(d.name, str(d), plan) for d in ckpts]
    judge_all(plan, models)
    summaries = {m.name: summarize(m, plan) for m in models}
    used, agg = scores(summaries)
    order = [d.name for d in ckpts]
    if not used:
        log.warning("no measure available (no multipleChoice, heldOut or judge input): selecting the last checkpoint")
    chosen = best(agg, order)
    src = ckpts[order.index(chosen)]
    log.info("selected %s (score %s) of %s", chosen, agg[chosen], {k: v for k, v in agg.items()})
    copy_atomic(src, Path(cfg.selected_dir))
    if cfg.export_dir:
        copy_atomic(src, Path(cfg.export_dir))
    report = {
        "job": cfg.job,
        "selected": cfg.selected_dir,
        "source": str(src),
        "score_components": used,
        "scores": agg,
        "measures": summaries,
        "inputs": plan.stats(),
    }
    report_path = Path(cfg.checkpoints_dir) / "selection.json"
    atomic_write_json(report_path, report, indent=1)
    return fit(
        {
            "status": "Succeeded",
            "selected": cfg.selected_dir,
            "best_checkpoint": str(src),
            "report": str(report_path),
            "score_components": used,
            "scores": {k: (None if v is None else round(v, 6)) for k, v in agg.items()},
            "checkpoints": order,
        }
    )
