"""``labrador-trainer mix``: the shards' kept samples → InstructLab messages JSONL for each training phase, plus the
evaluation sets.

- knowledge phase: each knowledge Q/A with its document chunk in the prompt, and an ``unmask`` copy (trained on the
  whole text, as InstructLab's knowledge recipe does)
- skills phase: knowledge Q/A with ``distractorDocuments`` unrelated chunks shuffled in, the skill samples (at most
  ``maxSkillSamplesPerLeaf`` per leaf), and the replay datasets (``samplingSize``: a count when ≥ 1, a fraction below)
- multiple choice: per knowledge leaf, questions whose wrong choices are other answers (same leaf first)
- held out: the taxonomy's human seed examples, which generation never copies (``seed_copy`` filter)
Rows are ``{"id", "messages", "metadata", "unmask"}``; every output is written to a temp file and renamed.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections import Counter as Tally
from pathlib import Path
from typing import Any

import yaml

from labrador_trainer.files import read_jsonl, write_jsonl
from labrador_trainer.sdg.config import MixConfig
from labrador_trainer.sdg.run import InputError, load_leaves

log = logging.getLogger(__name__)


def _row(rid: str, system: str, user: str, answer: str, meta: dict[str, Any], unmask: bool = False) -> dict[str, Any]:
    return {
        "id": rid,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
            {"role": "assistant", "content": answer},
        ],
        "metadata": json.dumps(meta, sort_keys=True),
        "unmask": unmask,
    }


def _user(sample: dict[str, Any]) -> str:
    if sample.get("context"):
        return f"{sample['context']}\n\n{sample['question']}"
    return sample["question"]


def _replay(entry: Any, rng: random.Random) -> list[dict[str, Any]]:
    path = Path(entry.path)
    if not path.is_file():
        raise InputError(f"replay dataset {path} not found")
    rows = [r for r in read_jsonl(path, missing_ok=True, skip_invalid=True) if isinstance(r.get("messages"), list)]
    n = int(entry.sampling_size) if entry.sampling_size >= 1 else math.floor(len(rows) * entry.sampling_size)
    if n <= len(rows):
        return rng.sample(rows, n)
    return rows * (n // len(rows)) + rng.sample(rows, n % len(rows)) if rows else []


def held_out(taxonomy: Path | None) -> list[dict[str, Any]]:
    """The taxonomy's seed Q/A pairs, one row per question, for evaluation."""
    if taxonomy is None:
        return []
    rows = []
    for leaf in load_leaves(taxonomy):
        qna = yaml.safe_load((taxonomy / "taxonomy" / leaf["path"]).read_text(encoding="utf-8")) or {}
        for i, seed in enumerate(qna.get("seed_examples") or []):
            if not isinstance(seed, dict):
                continue
            pairs = seed.get("questions_and_answers") or [seed]
            for j, qa in enumerate(pairs):
                if isinstance(qa, dict) and isinstance(qa.get("question"), str) and isinstance(qa.get("answer"), str):
                    rows.append(
                        {
                            "id": f"{leaf['path']}#{i}.{j}",
                            "leaf": leaf["path"],
                            "type": leaf["type"],
                            "question": qa["question"].strip(),
                            "answer": qa["answer"].strip(),
                            "context": seed.get("context").strip() if isinstance(seed.get("context"), str) else None,
                        }
                    )
    return rows


def multiple_choice(
    knowledge: dict[str, list[dict[str, Any]]],
    per_leaf: int,
    rng: random.Random,
    seed_answers: dict[str, list[str]] | None = None,
) -> list[dict[str, Any]]:
    """Four choices per question: the right answer and three wrong ones — other generated answers of the same leaf
    first, then the leaf's human seed answers (same topic), then answers of other leaves."""
    seed_answers = seed_answers or {}
    every = [s["answer"] for samples in knowledge.values() for s in samples]
    out = []
    for leaf, samples in sorted(knowledge.items()):
        for s in rng.sample(samples, min(per_leaf, len(samples))):
            wrong: list[str] = []
            for pool in ([x["answer"] for x in samples], seed_answers.get(leaf, []), every):
                candidates = sorted({a for a in pool if a != s["answer"] and a not in wrong})
                wrong += rng.sample(candidates, min(3 - len(wrong), len(candidates)))
            if len(wrong) < 3:
                continue  # not enough distinct answers in the whole run
            choices = [s["answer"], *wrong]
            rng.shuffle(choices)
            out.append(
                {
                    "id": s["id"],
                    "leaf": leaf,
                    "question": s["question"],
                    "choices": choices,
                    "answer": choices.index(s["answer"]),
                    "context": s.get("context"),
                }
            )
    return out


def run_mix(cfg: MixConfig) -> dict[str, Any]:
    rng = random.Random(cfg.seed)
    root = Path(cfg.input_dir)
    if not root.is_dir():
        raise InputError(f"input directory {root} not found: did generation run?")
    taxonomy = Path(cfg.taxonomy) if cfg.taxonomy else None
    # (leaf directory, summary) of every finished leaf
    summaries = [(p.parent, json.loads(p.read_text())) for p in sorted(root.glob("*/summary.json"))]
    if taxonomy is not None:
        expected = {leaf["path"] for leaf in load_leaves(taxonomy)}
        found = {s["path"] for _, s in summaries}
        if expected - found:
            raise InputError(
                f"no generated samples for {len(expected - found)} leaves, e.g. {sorted(expected - found)[0]}"
            )
    counts: Tally[str] = Tally()
    dropped_by: Tally[str] = Tally()
    knowledge: dict[str, list[dict[str, Any]]] = {}
    skills: dict[str, list[dict[str, Any]]] = {}
    for leaf_dir, s in summaries:
        counts.update({k: int(s.get(k, 0)) for k in ("generated", "kept")})
        dropped_by.update(s.get("dropped_by") or {})
        samples = read_jsonl(leaf_dir / "samples.jsonl", missing_ok=True, skip_invalid=True)
        (knowledge if s["type"] == "knowledge" else skills)[s["path"]] = samples
    system = cfg.system_prompt
    mixing = cfg.mixing

    k_rows: list[dict[str, Any]] = []
    for leaf, samples in sorted(knowledge.items()):
        for s in samples:
            meta = {"leaf": leaf, "type": "knowledge", "dataset": "document_knowledge_qa"}
            k_rows.append(_row(s["id"], system, f"{s['chunk']}\n\n{s['question']}", s["answer"], meta))
            k_rows.append(
                _row(f"{s['id']}-unmask", system, f"{s['chunk']}\n\n{s['question']}", s["answer"], meta, True)
            )
    chunks: set[tuple[str, str]] = set()  # (leaf, chunk): every chunk of every knowledge document
    for leaf_dir, s in summaries:
        if (leaf_dir / "chunks.json").is_file():
            chunks |= {(s["path"], c) for c in json.loads((leaf_dir / "chunks.json").read_text())}
    chunks |= {(leaf, s["chunk"]) for leaf, samples in knowledge.items() for s in samples}
    pool_all = sorted(chunks)

    s_rows: list[dict[str, Any]] = []
    for leaf, samples in sorted(knowledge.items()):
        pool = [c for lf, c in pool_all if lf != leaf] or [c for lf, c in pool_all if lf == leaf]
        for s in samples:
            others = [c for c in pool if c != s["chunk"]]
            docs = [s["chunk"], *rng.sample(others, min(mixing.distractor_documents, len(others)))]
            rng.shuffle(docs)
            user = "\n\n".join(f"Document {i + 1}:\n{d}" for i, d in enumerate(docs)) + f"\n\n{s['question']}"
            meta = {"leaf": leaf, "type": "knowledge", "dataset": "knowledge_with_distractors"}
            s_rows.append(_row(f"{s['id']}-d", system, user, s["answer"], meta))
    for leaf, samples in sorted(skills.items()):
        for s in samples[: mixing.max_skill_samples_per_leaf]:
            meta = {"leaf": leaf, "type": s["type"], "dataset": "skills"}
            s_rows.append(_row(s["id"], system, _user(s), s["answer"], meta))
    replayed = 0
    for entry in mixing.replay or []:
        rows = _replay(entry, rng)
        replayed += len(rows)
        s_rows += rows
    rng.shuffle(k_rows)
    rng.shuffle(s_rows)

    held = held_out(taxonomy)
    seed_answers: dict[str, list[str]] = {}
    for row in held:
        seed_answers.setdefault(row["leaf"], []).append(row["answer"])
    mcq = multiple_choice(knowledge, mixing.multiple_choice_per_leaf, rng, seed_answers)
    out = cfg.outputs
    write_jsonl(Path(out.knowledge), k_rows)
    write_jsonl(Path(out.skills), s_rows)
    write_jsonl(Path(out.multiple_choice), mcq)
    write_jsonl(Path(out.held_out), held)
    log.info(
        "knowledge %d rows, skills %d rows (%d replayed), %d MCQs, %d held out",
        len(k_rows),
        len(s_rows),
        replayed,
        len(mcq),
        len(held),
    )
    return {
        "counts": {
            "generated": counts["generated"],
            "kept": counts["kept"],
            "dropped": counts["generated"] - counts["kept"],
            "knowledge": len(k_rows),
            "skills": len(s_rows),
        },
        "dropped_by": dict(sorted(dropped_by.items())),
        "replayed": replayed,
        "multiple_choice": len(mcq),
        "held_out": len(held),
        "outputs": {
            "knowledge": out.knowledge,
            "skills": out.skills,
            "multipleChoice": out.multiple_choice,
            "heldOut": out.held_out,
        },
    }
