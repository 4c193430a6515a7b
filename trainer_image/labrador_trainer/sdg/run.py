"""``labrador-trainer generate``: run the flows of one shard's leaves, stage by stage, every leaf of a round batched
into one teacher call, with results kept per leaf and stage so a rerun after a kill skips finished work.

On disk, per leaf (``<outputDir>/<leaf slug>/``):
- ``<k>-<stage>.partial.jsonl``: results appended as requests finish, ``{"i": request index, "items", "drop",
  "tokens"}``
- ``<k>-<stage>.jsonl`` + ``<k>-<stage>.json`` (counts): the stage's outputs, written when all its requests are in
- ``samples.jsonl`` + ``summary.json``: the leaf's kept samples and counts, written last (the leaf is then done)
Requests are deterministic (seeded per leaf, stage and index), so a resumed run asks exactly what the killed one did.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import random
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labrador_trainer.files import append_jsonl, atomic_write_json, read_jsonl, write_jsonl
from labrador_trainer.sdg import parse
from labrador_trainer.sdg.chunk import chunk_text
from labrador_trainer.sdg.config import GenerateConfig
from labrador_trainer.sdg.flows import (
    FLOWS,
    Item,
    LeafWork,
    Stage,
    build_request,
    initial_count,
    initial_items,
    leaf_slug,
)
from labrador_trainer.sdg.llm import ChatRequest, Completion, Generator
from labrador_trainer.sdg.observe import Observer
from labrador_trainer.sdg.prompts import Template

log = logging.getLogger(__name__)


#: a request's prompt in output-token equivalents, for the progress estimate
PROMPT_UNITS = 32
#: finished requests are appended to the partial files at least this often (the resume granularity)
FLUSH_SECONDS = 2.0


class InputError(ValueError):
    """The taxonomy snapshot or config cannot be used (exit code 2)."""


class TeacherUnavailable(RuntimeError):
    """Requests failed after retries (the teacher, not the request, was at fault): exit 1 so the pod is retried;
    what did finish is kept and the retry asks only for the rest."""


# -- planning -------------------------------------------------------------------------------------------------------
def load_leaves(taxonomy: Path) -> list[dict[str, Any]]:
    """The valid leaves of a ``taxonomy sync`` snapshot, sorted by path."""
    report = taxonomy / "taxonomy.json"
    if not report.is_file():
        raise InputError(f"{report} not found: not a taxonomy snapshot (run `labrador-trainer taxonomy sync`)")
    data = json.loads(report.read_text())
    leaves = [leaf for leaf in data.get("leaves", []) if leaf.get("valid", True)]
    return sorted(leaves, key=lambda leaf: leaf["path"])


def shard_of(leaves: Sequence[dict[str, Any]], index: int, count: int) -> list[dict[str, Any]]:
    """Leaf i goes to shard i mod count: deterministic, disjoint, and every leaf in exactly one shard."""
    return [leaf for i, leaf in enumerate(leaves) if i % count == index]


def targets(leaves: Sequence[dict[str, Any]], per_seed: int, max_samples: int | None) -> dict[str, int]:
    """Samples to generate per leaf: ``per_seed`` × seed examples, scaled down (over all shards) to ``max_samples``."""
    raw = {leaf["path"]: per_seed * max(1, int(leaf.get("seed_examples") or 0)) for leaf in leaves}
    total = sum(raw.values())
    if max_samples is None or total <= max_samples:
        return raw
    return {p: max(1, math.floor(n * max_samples / total)) for p, n in raw.items()}


def leaf_work(
    snapshot: Path, leaf: dict[str, Any], target: int, count: Callable[[str], int], chunk_tokens: int
) -> LeafWork:
    qna = yaml.safe_load((snapshot / "taxonomy" / leaf["path"]).read_text(encoding="utf-8")) or {}
    seeds = [s for s in qna.get("seed_examples") or [] if isinstance(s, dict)]
    work = LeafWork(
        path=leaf["path"],
        type=leaf["type"],
        target=target,
        seeds=seeds,
        description=str(qna.get("task_description") or qna.get("domain") or qna.get("document_outline") or ""),
    )
    if leaf["type"] == "knowledge":
        docs_dir = snapshot / "documents" / Path(leaf["path"]).parent
        for name in leaf.get("documents") or []:
            doc = docs_dir / name
            if not doc.is_file() or not name.lower().endswith(".md"):
                continue  # PDFs need conversion (docling in InstructLab); markdown only here
            work.documents.append(name)
            work.chunks += chunk_text(doc.read_text(encoding="utf-8", errors="replace"), count, chunk_tokens)
        if not work.chunks:  # no markdown document: the seed contexts are the material
            work.chunks = [s["context"] for s in seeds if isinstance(s.get("context"), str)]
    return work


# -- persistence ----------------------------------------------------------------------------------------------------
@dataclass
class StageState:
    """One (leaf, stage): its input items and the results in so far."""

    leaf: LeafWork
    k: int
    stage: Stage
    inputs: list[Item]
    results: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def stem(self) -> str:
        return f"{self.k}-{self.stage.name}"

    def pending(self) -> list[int]:
        return [i for i in range(len(self.inputs)) if i not in self.results]


class LeafStore:
    def __init__(self, root: Path, slug: str) -> None:
        self.dir = root / slug
        self.dir.mkdir(parents=True, exist_ok=True)

    def done(self) -> bool:
        return (self.dir / "summary.json").is_file()

    def stage_output(self, stem: str) -> list[Item] | None:
        if not (self.dir / f"{stem}.json").is_file():
            return None
        return read_jsonl(self.dir / f"{stem}.jsonl", missing_ok=True, skip_invalid=True)

    def stage_counts(self, stem: str) -> dict[str, Any]:
        return json.loads((self.dir / f"{stem}.json").read_text())

    def partial(self, stem: str) -> dict[int, dict[str, Any]]:
        # a torn last line (a kill mid-append) is skipped: that request is asked again
        rows = read_jsonl(self.dir / f"{stem}.partial.jsonl", missing_ok=True, skip_invalid=True)
        return {int(r["i"]): r for r in rows if "i" in r}

    def append(self, stem: str, rows: Iterable[dict[str, Any]]) -> None:
        append_jsonl(self.dir / f"{stem}.partial.jsonl", rows, fsync=True)

    def finish_stage(self, stem: str, items: list[Item], counts: dict[str, Any], dropped: list[dict[str, Any]]) -> None:
        write_jsonl(self.dir / f"{stem}.dropped.jsonl", dropped, fsync=True)
        write_jsonl(self.dir / f"{stem}.jsonl", items, fsync=True)
        atomic_write_json(self.dir / f"{stem}.json", counts, fsync=True)
        (self.dir / f"{stem}.partial.jsonl").unlink(missing_ok=True)

    def finish_leaf(self, samples: list[Item], summary: dict[str, Any], chunks: list[str]) -> None:
        if chunks:  # the leaf's document chunks: mixing draws distractor documents from them
            atomic_write_json(self.dir / "chunks.json", chunks, ensure_ascii=False, fsync=True)
        write_jsonl(self.dir / "samples.jsonl", samples, fsync=True)
        atomic_write_json(self.dir / "summary.json", summary, indent=1, fsync=True)


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "big") & 0x7FFFFFFF


# -- running --------------------------------------------------------------------------------------------------------
@dataclass
class Summary:
    output_tokens: int = 0
    generated: int = 0
    kept: int = 0
    dropped_by: Tally[str] = field(default_factory=Tally)
    leaves: list[dict[str, Any]] = field(default_factory=list)


class Runner:
    def __init__(
        self,
        cfg: GenerateConfig,
        templates: dict[str, Template],
        generator: Callable[[], Generator],
        observer: Observer,
        *,
        batch_size: int = 4096,
    ) -> None:
        self.cfg, self.templates, self.observer = cfg, templates, observer
        self._make_generator = generator
        self._gen: Generator | None = None
        self.batch_size = batch_size
        self.out = Path(cfg.output_dir)

    @property
    def gen(self) -> Generator:
        if self._gen is None:
            self._gen = self._make_generator()
        return self._gen

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()

    def run(self, shard: tuple[int, int]) -> dict[str, Any]:
        snapshot = Path(self.cfg.taxonomy)
        every = load_leaves(snapshot)
        mine = shard_of(every, *shard)
        want = targets(every, self.cfg.samples_per_seed_example, self.cfg.max_samples)
        flows = FLOWS[self.cfg.pipeline]
        stores: dict[str, LeafStore] = {}
        works: list[LeafWork] = []
        summary = Summary()
        for leaf in mine:
            store = stores[leaf["path"]] = LeafStore(self.out, leaf_slug(leaf["path"]))
            if store.done():
                self._account(summary, json.loads((store.dir / "summary.json").read_text()))
                n0 = initial_count(leaf["type"], want[leaf["path"]])
                self.observer.credit_units(self._units(flows[leaf["type"]], n0))
                continue
            works.append(leaf_work(snapshot, leaf, want[leaf["path"]], self.gen.count_tokens, self.cfg.chunk_tokens))
        self.observer.set_target(sum(want[leaf["path"]] for leaf in mine))
        self.observer.add_generated(summary.generated)
        log.info("shard %d/%d: %d leaves (%d already done)", *shard, len(mine), len(mine) - len(works))
        current: dict[str, list[Item]] = {w.path: initial_items(w) for w in works}
        counts: dict[str, Tally[str]] = {w.path: Tally() for w in works}
        rounds = max((len(flows[w.type]) for w in works), default=0)
        for k in range(rounds):
            states = []
            for w in works:
                stages = flows[w.type]
                if k >= len(stages):
                    continue
                store, stage = stores[w.path], stages[k]
                stem = f"{k}-{stage.name}"
                done = store.stage_output(stem)
                if done is not None:  # finished before a restart
                    self.observer.credit_units(len(current[w.path]) * self._cost(stage))
                    current[w.path] = done
                    stage_counts = store.stage_counts(stem)
                    counts[w.path].update(stage_counts)
                    if stage.generates:
                        self.observer.add_generated(stage_counts.get("generated", 0))
                    continue
                st = StageState(w, k, stage, current[w.path], store.partial(stem))
                self.observer.credit_units(len(st.results) * self._cost(stage))
                states.append(st)
            rest = self._units_from(k, works, current, {st.leaf.path: st for st in states}, flows)
            self.observer.plan_units(self.observer.units_credited + self.observer.units_done + rest)
            if states:
                self._run_round(k, states, stores, summary)
                for st in states:
                    items, c, dropped = self._collect(st)
                    stores[st.leaf.path].finish_stage(st.stem, items, c, dropped)
                    current[st.leaf.path] = items
                    counts[st.leaf.path].update(c)
        for w in works:
            samples, c = self._final(w, current[w.path], counts[w.path])
            leaf_summary = {"path": w.path, "type": w.type, "target": w.target, **c}
            stores[w.path].finish_leaf(samples, leaf_summary, w.chunks if w.type == "knowledge" else [])
            self._account(summary, leaf_summary)
        self.observer.finish()
        dtype = getattr(self._gen, "dtype", None) if self._gen is not None else None
        return {
            "shard": f"{shard[0]}/{shard[1]}",
            **({"dtype": dtype} if dtype else {}),  # what the in-process teacher ran in (auto resolved here)
            "output_tokens": summary.output_tokens,
            "requests": self.observer.requests_total,  # sent by this run (a resumed run sends only what was missing)
            "counts": {
                "generated": summary.generated,
                "kept": summary.kept,
                "dropped": summary.generated - summary.kept,
            },
            "dropped_by": dict(sorted(summary.dropped_by.items())),
            "leaves": summary.leaves,
        }

    def _account(self, summary: Summary, leaf: dict[str, Any]) -> None:
        summary.generated += int(leaf.get("generated", 0))
        summary.kept += int(leaf.get("kept", 0))
        summary.dropped_by.update(leaf.get("dropped_by") or {})
        summary.output_tokens += int(leaf.get("output_tokens", 0))  # earlier runs' stages included
        summary.leaves.append({"path": leaf["path"], "kept": leaf.get("kept", 0), "dropped": leaf.get("dropped", 0)})

    # -- progress estimate (work units: see observe.py) -------------------------------------------------------------
    def _cost(self, stage: Stage) -> float:
        """A request's weight: its output-token budget plus a prompt share (prefill is cheap next to decoding)."""
        return self._max_tokens(stage) + PROMPT_UNITS

    def _max_tokens(self, stage: Stage) -> int:
        cap = self.cfg.max_new_tokens
        budget = self.templates[stage.template].max_tokens
        return min(budget, cap) if cap else budget

    def _units(self, stages: Sequence[Stage], n: int) -> float:
        """Units of running ``stages`` from ``n`` inputs, each stage passing on at most ``fanout`` items per input."""
        units = 0.0
        for stage in stages:
            units += n * self._cost(stage)
            n *= stage.fanout
        return units

    def _units_from(
        self,
        k: int,
        works: Sequence[LeafWork],
        current: dict[str, list[Item]],
        running: dict[str, StageState],
        flows: dict[str, list[Stage]],
    ) -> float:
        """Units still to do from round ``k`` on: the pending requests of the stages about to run, and every later
        stage at the most items the earlier ones can pass on (revised each round with the real counts)."""
        units = 0.0
        for w in works:
            stages = flows[w.type]
            if k >= len(stages):
                continue
            st = running.get(w.path)
            if st is None:  # stage k finished before a restart: current holds its outputs
                units += self._units(stages[k + 1 :], len(current[w.path]))
                continue
            units += len(st.pending()) * self._cost(st.stage)
            units += self._units(stages[k + 1 :], len(st.inputs) * st.stage.fanout)
        return units

    # -- one round: every leaf's stage k, batched into teacher calls ---------------------------------------------------
    def _run_round(self, k: int, states: list[StageState], stores: dict[str, LeafStore], summary: Summary) -> None:
        names = sorted({st.stage.name for st in states})
        self.observer.set_stage("+".join(names))
        work: list[tuple[StageState, int, ChatRequest]] = []
        for st in states:
            t = self.templates[st.stage.template]
            for i in st.pending():
                seed = _seed(self.cfg.seed, st.leaf.path, st.stem, i)
                req = build_request(st.stage, t, st.leaf, st.inputs[i], random.Random(seed), seed)
                if req.max_tokens > self._max_tokens(st.stage):  # spec.maxNewTokens
                    req = dataclasses.replace(req, max_tokens=self._max_tokens(st.stage))
                work.append((st, i, req))
        self.observer.add_requests(len(work), round_=k)
        failures: list[str] = []
        # rows kept as requests finish, appended to each leaf's partial file every FLUSH_SECONDS (and at the end, also
        # when the teacher fails), so a killed run loses at most that much work
        unsaved: dict[str, tuple[StageState, list[dict[str, Any]]]] = {}
        flushed = time.monotonic()

        def flush() -> None:
            nonlocal flushed
            for st, rows in unsaved.values():
                if rows:
                    stores[st.leaf.path].append(st.stem, rows)
                    rows.clear()
            flushed = time.monotonic()

        def record(st: StageState, i: int, c: Completion) -> None:
            self.observer.request_done(c.output_tokens, self._cost(st.stage))
            if c.error is not None and c.retryable:
                failures.append(c.error)
                return  # not recorded: a rerun asks again
            items, drop = st.stage.apply(st.inputs[i], c.text) if c.error is None else ([], "error")
            for n, item in enumerate(items):
                item["id"] = f"{st.leaf.slug}-{st.stem}-{i}-{n}" if st.stage.generates else item.get("id")
            row = {"i": i, "items": items, "drop": drop, "tokens": c.output_tokens}
            if c.error:
                row["error"] = c.error[:200]
            elif drop:
                row["raw"] = (c.text or "")[:500]  # kept for prompt debugging (<stage>.dropped.jsonl)
            st.results[i] = row
            unsaved.setdefault(st.leaf.path, (st, []))[1].append(row)
            if st.stage.generates:
                self.observer.add_generated(len(items) or 1)
            if time.monotonic() - flushed >= FLUSH_SECONDS:
                flush()

        for start in range(0, len(work), self.batch_size):
            batch = work[start : start + self.batch_size]

            def on_done(j: int, c: Completion, batch: list = batch) -> None:
                record(batch[j][0], batch[j][1], c)

            try:
                self.gen.generate([r for _, _, r in batch], on_done)
            finally:
                flush()
        if failures:
            raise TeacherUnavailable(f"{len(failures)} of {len(work)} requests failed after retries: {failures[-1]}")

    @staticmethod
    def _collect(st: StageState) -> tuple[list[Item], dict[str, Any], list[dict[str, Any]]]:
        items: list[Item] = []
        c: Tally[str] = Tally()
        dropped = []
        for i in range(len(st.inputs)):
            row = st.results[i]
            items += row["items"]
            if row["drop"]:
                c[f"drop:{row['drop']}"] += 1
                dropped.append({"i": i, "reason": row["drop"], "raw": row.get("raw"), "error": row.get("error")})
            if st.stage.generates:
                c["generated"] += len(row["items"]) or 1
            c["tokens"] += int(row.get("tokens", 0))
        return items, dict(c), dropped

    def _final(self, w: LeafWork, items: list[Item], counts: Tally[str]) -> tuple[list[Item], dict[str, Any]]:
        dropped_by: Tally[str] = Tally({k.removeprefix("drop:"): v for k, v in counts.items() if k.startswith("drop:")})
        seen: set[str] = set()
        seeds = w.seed_questions()
        kept = []
        for item in items:
            key = parse.normalize(item["question"] + " " + item.get("context", ""))
            if parse.normalize(item["question"]) in seeds:
                dropped_by["seed_copy"] += 1
            elif key in seen:
                dropped_by["duplicate"] += 1
            else:
                seen.add(key)
                kept.append({"leaf": w.path, "type": w.type, **item})
        generated = counts.get("generated", 0)
        return kept, {
            "generated": generated,
            "kept": len(kept),
            "dropped": generated - len(kept),
            "dropped_by": dict(sorted(dropped_by.items())),
            "output_tokens": counts.get("tokens", 0),
            "documents": w.documents,
        }
