"""InstructLab's own SDG (instructlab-sdg 0.8.3) on a taxonomy snapshot, against an OpenAI-compatible teacher.

Runs inside the venv of ``hack/ilab-sdg-venv.sh`` (instructlab-sdg pins ``openai<2``), started by ``bench/sdg.py``.
It does what ``ilab data generate`` does between preprocessing and mixing:

- leaves: instructlab-sdg's ``read_taxonomy_leaf_nodes`` (schema validation, document repos cloned at their commits)
  and ``leaf_node_to_samples`` for skills; knowledge documents are chunked by the caller (``--chunks``: docling's
  converter needs its layout models from Hugging Face, out of reach here), then ``map_chunks_to_icls`` as InstructLab
  does after docling, one sample file per leaf as ``preprocess_taxonomy`` writes them;
- generation: ``generate_taxonomy`` with the shipped ``simple``/``full`` pipeline, leaf by leaf, blocks in batches of
  ``--batch-size`` over ``--num-cpus`` threads (the ``ilab`` CLI's defaults: 8 and 10).

The teacher's chat template is registered as a model family with InstructLab's PromptRegistry, so the prompts reach
the teacher in its own format (as the chat endpoint renders them for Labrador). Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def register_family(name: str, model_dir: Path) -> None:
    """The teacher's own chat template (``chat_template.jinja`` or ``tokenizer_config.json``) as a model family."""
    from instructlab.sdg.registry import PromptRegistry

    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    else:
        template = json.loads((model_dir / "tokenizer_config.json").read_text())["chat_template"]
    PromptRegistry.register(name)(lambda: template)


def write_samples(taxonomy: Path, chunks: dict[str, list[str]], dest: Path, work: Path) -> dict[str, int]:
    """One ``<leaf_node_path>.jsonl`` of pipeline input samples per leaf (as ``preprocess_taxonomy`` writes them)."""
    from instructlab.sdg.utils.json import jldump
    from instructlab.sdg.utils.taxonomy import (
        _enrich_metadata,
        leaf_node_to_samples,
        map_chunks_to_icls,
        read_taxonomy_leaf_nodes,
    )

    nodes = read_taxonomy_leaf_nodes(str(taxonomy), "empty", None, work / "documents")
    if not nodes:
        raise SystemExit(f"no leaves under {taxonomy}")
    rows = {}
    for tax_path, node in sorted(nodes.items()):
        leaf = tax_path.replace("->", "/") + "/qna.yaml"
        if node[0].get("filepaths"):  # knowledge
            if not chunks.get(leaf):
                raise SystemExit(f"no chunks given for knowledge leaf {leaf}")
            samples = _enrich_metadata(map_chunks_to_icls(chunks[leaf], node), node)
        else:
            samples = leaf_node_to_samples(node, 4096, 1000, work / "documents", None)
        jldump(samples, str(dest / f"{tax_path.replace('->', '_')}.jsonl"))
        rows[leaf] = len(samples)
    return rows


class TokenCount:
    """Completion tokens of every response the pipelines receive (usage reported by the server)."""

    def __init__(self) -> None:
        self.tokens = 0
        self.requests = 0
        self._lock = threading.Lock()

    def wrap(self, client: Any) -> None:
        create = client.completions.create

        def counted(*args: Any, **kwargs: Any) -> Any:
            resp = create(*args, **kwargs)
            with self._lock:
                self.requests += 1
                self.tokens += resp.usage.completion_tokens if resp.usage else 0
            return resp

        client.completions.create = counted


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--taxonomy", type=Path, required=True, help="taxonomy tree (compositional_skills/, knowledge/)")
    p.add_argument("--chunks", type=Path, required=True, help="JSON {leaf path: [document chunk, ...]}")
    p.add_argument("--url", required=True, help="OpenAI-compatible base URL (…/v1)")
    p.add_argument("--model", required=True, help="model name at the endpoint")
    p.add_argument("--model-dir", type=Path, required=True, help="the teacher's HF directory (its chat template)")
    p.add_argument("--pipeline", choices=("simple", "full"), default="simple")
    p.add_argument("--num-instructions", type=int, default=3, help="num_instructions_to_generate")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--num-cpus", type=int, default=10)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    t0 = time.monotonic()
    import openai
    from instructlab.sdg.generate_data import generate_taxonomy

    family = "labrador-teacher"
    register_family(family, args.model_dir)
    chunks = json.loads(args.chunks.read_text())
    inputs, outputs = args.out / "samples", args.out / "generated"
    inputs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ilab-sdg-") as work:
        rows = write_samples(args.taxonomy, chunks, inputs, Path(work))
    t1 = time.monotonic()

    client = openai.OpenAI(base_url=args.url, api_key="none", timeout=1800)
    count = TokenCount()
    count.wrap(client)
    error = None
    t2 = time.monotonic()
    try:
        generate_taxonomy(
            client,
            str(inputs),
            str(outputs),
            model_family=family,
            model_id=args.model,
            num_cpus=args.num_cpus,
            num_instructions_to_generate=args.num_instructions,
            console_output=False,
            pipeline=args.pipeline,
            batch_size=args.batch_size,
        )
    except Exception as exc:  # reported, with what was generated before it
        error = f"{type(exc).__name__}: {exc}"[:2000]
    t3 = time.monotonic()
    kept = {}
    for f in sorted(outputs.glob("*.jsonl")) if outputs.is_dir() else []:
        kept[f.stem] = sum(1 for line in f.read_text(encoding="utf-8").splitlines() if line.strip())
    result = {
        "pipeline": args.pipeline,
        "input_rows": rows,
        "kept": sum(kept.values()),
        "kept_by_leaf": kept,
        "output_tokens": count.tokens,
        "requests": count.requests,
        "prepare_s": round(t1 - t0, 2),
        "generate_s": round(t3 - t2, 2),
        "error": error,
    }
    print(json.dumps(result))
    return 0 if error is None else 1


if __name__ == "__main__":
    sys.exit(main())
