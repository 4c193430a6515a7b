"""``labrador-trainer evaluate [--select-checkpoint] --config X.json``: exit 0 ok, 2 bad config or input, 1 other."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labrador_trainer.evaluate.config import EvaluateConfig

log = logging.getLogger("labrador_trainer.evaluate")

EXIT_USER_ERROR = 2


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("evaluate", help="evaluate base vs tuned, or select a phase's best checkpoint")
    p.add_argument("--config", required=True, help="evaluate.json (or <phase>-select.json with --select-checkpoint)")
    p.add_argument("--select-checkpoint", action="store_true", help="score a phase's checkpoints and copy the best")
    p.add_argument("--termination-log", default=None, help="write the JSON summary (<= 4 KiB) here")
    p.add_argument("--metrics-port", type=int, default=None, help="accepted for symmetry with train; unused")
    p.set_defaults(func=run)


def _write(path: str | None, summary: dict[str, Any]) -> None:
    """Written in place, not renamed: Kubernetes bind-mounts the termination log file, so a rename onto it fails."""
    if path:
        Path(path).write_text(json.dumps(summary, separators=(",", ":")))


def run(args: argparse.Namespace) -> int:
    from labrador_trainer.evaluate.config import ConfigError, EvaluateConfig, SelectConfig, load
    from labrador_trainer.evaluate.pipeline import InputError

    try:
        cfg = load(args.config, select=args.select_checkpoint)
        if isinstance(cfg, SelectConfig):
            from labrador_trainer.evaluate.select import run_select

            summary = run_select(cfg)
        else:
            assert isinstance(cfg, EvaluateConfig)
            summary = run_evaluate(cfg)
    except (ConfigError, InputError) as e:
        print(f"invalid input: {e}", file=sys.stderr, flush=True)
        _write(args.termination_log, {"status": "Failed", "reason": "InvalidInput", "message": str(e)[:2000]})
        return EXIT_USER_ERROR
    except Exception as e:
        log.exception("evaluation failed")
        message = f"{type(e).__name__}: {e}"[:2000]
        _write(args.termination_log, {"status": "Failed", "reason": "Error", "message": message})
        return 1
    _write(args.termination_log, summary)
    print(json.dumps(summary))
    return 0


def run_evaluate(cfg: EvaluateConfig) -> dict[str, Any]:
    from labrador_trainer.evaluate.pipeline import Plan, check_model_dir, judge_all, score_model
    from labrador_trainer.evaluate.report import build_report, termination, write_reports

    check_model_dir(cfg.base_model, "baseModel")
    check_model_dir(cfg.tuned_model, "tunedModel")
    plan = Plan.build(cfg, [cfg.data[k] for k in ("knowledge", "skills") if cfg.data.get(k)])
    base = score_model("base", cfg.base_model, plan)
    tuned = score_model("tuned", cfg.tuned_model, plan)
    judge_all(plan, [base, tuned])
    report = build_report(cfg.job, plan, base, tuned)
    path = write_reports(report, cfg.report_dir)
    log.info("report: %s (base %s, tuned %s)", path, report["base_score"], report["tuned_score"])
    return termination(report, str(path))
