"""``labrador-trainer generate`` and ``labrador-trainer mix``. Exit codes: 0 done, 2 bad config or input (the user's
to fix; the operator fails fast on it), 1 anything else (retried)."""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("labrador_trainer.sdg")


def _shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)/(\d+)", text)
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise argparse.ArgumentTypeError(f"--shard must be i/N with 0 <= i < N, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    g = sub.add_parser("generate", help="expand a taxonomy snapshot's seed examples with a teacher model")
    g.add_argument("--config", type=Path, help="generate.json (as the operator writes it)")
    g.add_argument("--taxonomy", help="snapshot directory (overrides the config)")
    g.add_argument("--output-dir", help="where per-leaf results go (overrides the config)")
    g.add_argument("--teacher-model", help="HF model directory served by the vLLM engine in this process")
    g.add_argument("--teacher-url", help="OpenAI-compatible endpoint base URL (key from OPENAI_API_KEY)")
    g.add_argument("--teacher-name", help="model name at the endpoint")
    g.add_argument("--gpu-memory-utilization", type=float, help="vLLM memory fraction (≈0.2 on CPU)")
    g.add_argument("--max-model-len", type=int, help="vLLM context length")
    g.add_argument("--pipeline", choices=("full", "simple"))
    g.add_argument("--prompts-dir", help="directory of prompt files replacing built-in ones by name")
    g.add_argument("--samples-per-seed-example", type=int)
    g.add_argument("--max-samples", type=int)
    g.add_argument("--max-new-tokens", type=int, help="cap on every request's output tokens")
    g.add_argument("--shard", type=_shard, default=(0, 1), help="i/N: this process's slice of the leaves")
    g.add_argument("--batch-size", type=int, default=4096, help="requests per teacher call (resume granularity)")
    g.add_argument("--metrics-port", type=int)
    g.add_argument("--termination-log", type=Path)
    g.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    g.set_defaults(func=run_generate)

    m = sub.add_parser("mix", help="turn generated samples into training and evaluation sets")
    m.add_argument("--config", type=Path, required=True, help="mix.json (as the operator writes it)")
    m.add_argument("--termination-log", type=Path)
    m.set_defaults(func=run_mix)


def _generate_config(args: argparse.Namespace) -> Any:
    from labrador_trainer.sdg.config import ConfigError, GenerateConfig, load

    base: dict[str, Any] = load(GenerateConfig, args.config).model_dump(by_alias=True) if args.config else {}
    teacher = dict(base.get("teacher") or {})
    if args.teacher_model:
        teacher = {"kind": "vllm", "model": args.teacher_model, "vllm": {}}
    elif args.teacher_url:
        teacher = {"kind": "endpoint", "url": args.teacher_url, "model": args.teacher_name or "default"}
    if teacher.get("kind") == "vllm":
        vllm = dict(teacher.get("vllm") or {})
        if args.gpu_memory_utilization is not None:
            vllm["gpuMemoryUtilization"] = args.gpu_memory_utilization
        if args.max_model_len is not None:
            vllm["maxModelLen"] = args.max_model_len
        teacher["vllm"] = vllm
    overrides = {
        "taxonomy": args.taxonomy,
        "outputDir": args.output_dir,
        "pipeline": args.pipeline,
        "promptsDir": args.prompts_dir,
        "samplesPerSeedExample": args.samples_per_seed_example,
        "maxSamples": args.max_samples,
        "maxNewTokens": args.max_new_tokens,
    }
    merged = {**base, "teacher": teacher, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return GenerateConfig.model_validate(merged)
    except ValueError as exc:
        raise ConfigError(f"generate: {exc}") from exc


def _write(path: Path | None, summary: dict[str, Any]) -> None:
    from labrador_trainer.train.observe import write_summary

    if path is None:
        return
    while len(json.dumps(summary, separators=(",", ":"))) > 4000 and summary.get("leaves"):
        summary["leaves"] = summary["leaves"][: len(summary["leaves"]) // 2]
        summary["leaves_truncated"] = True
    write_summary(path, summary)


def run_generate(args: argparse.Namespace) -> int:
    from labrador_trainer.sdg.config import ConfigError
    from labrador_trainer.sdg.llm import make_generator
    from labrador_trainer.sdg.observe import Observer
    from labrador_trainer.sdg.prompts import PromptError, load_templates
    from labrador_trainer.sdg.run import InputError, Runner, TeacherUnavailable

    try:
        cfg = _generate_config(args)
        templates = load_templates(cfg.prompts_dir)
        if cfg.shards != args.shard[1] and args.config:
            log.warning("config says %d shards, --shard says %d: using --shard", cfg.shards, args.shard[1])
        runner = Runner(
            cfg,
            templates,
            lambda: make_generator(cfg.teacher, seed=cfg.seed),
            Observer(args.metrics_port, progress=not args.no_progress),
            batch_size=max(1, args.batch_size),
        )
        try:
            summary = runner.run(args.shard)
        finally:
            runner.close()
    except (ConfigError, PromptError, InputError) as exc:
        log.error("%s", exc)
        _write(args.termination_log, {"error": str(exc)[:3000]})
        return 2
    except TeacherUnavailable as exc:
        log.error("%s", exc)
        _write(args.termination_log, {"error": str(exc)[:3000], "retryable": True})
        return 1
    _write(args.termination_log, summary)
    c = summary["counts"]
    log.info(
        "shard %s: generated %d, kept %d, dropped %d %s",
        summary["shard"],
        c["generated"],
        c["kept"],
        c["dropped"],
        summary["dropped_by"],
    )
    return 0


def run_mix(args: argparse.Namespace) -> int:
    from labrador_trainer.sdg.config import ConfigError, MixConfig, load
    from labrador_trainer.sdg.mix import run_mix as mix
    from labrador_trainer.sdg.run import InputError

    try:
        summary = mix(load(MixConfig, args.config))
    except (ConfigError, InputError) as exc:
        log.error("%s", exc)
        _write(args.termination_log, {"error": str(exc)[:3000]})
        return 2
    _write(args.termination_log, summary)
    log.info("mix: %s", summary["counts"])
    return 0
