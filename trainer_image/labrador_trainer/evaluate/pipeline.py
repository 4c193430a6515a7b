"""One pass per model: load it once, run every measure the inputs allow, keep the greedy answers (every held-out
item with a judge, else the few examples), free it; the judge then rates all models' answers in one batch."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labrador_trainer.evaluate import inputs as inp
from labrador_trainer.evaluate.config import Inputs
from labrador_trainer.evaluate.judge import Judged, judge_answers
from labrador_trainer.evaluate.measures import (
    LM,
    LossResult,
    MCQResult,
    conversation_loss,
    generate,
    held_out_loss,
    mcq,
)

log = logging.getLogger("labrador_trainer.evaluate")


class InputError(ValueError):
    """An input the user must fix (a model directory that is not there): exit 2."""


@dataclass
class Plan:
    """The questions every model is scored on, loaded and subsampled once."""

    mcq: inp.Loaded[inp.MCQ]
    held_out: inp.Loaded[inp.HeldOut]
    general: list[inp.Loaded[inp.Conversation]]
    system: str | None
    trained_leaves: set[str]
    judge: dict[str, Any] | None
    examples: list[int] = field(default_factory=list)  # held-out indices shown in the report, in order

    @classmethod
    def build(cls, cfg: Inputs, data_paths: list[str], *, examples: bool = True) -> Plan:
        """``examples=False``: no example answers (checkpoint selection, which reports none)."""
        limit = cfg.evaluation.max_questions
        held_out = inp.load_jsonl(cfg.held_out, inp.parse_held_out, limit)
        return cls(
            mcq=inp.load_jsonl(cfg.multiple_choice, inp.parse_mcq, limit),
            held_out=held_out,
            general=[inp.load_jsonl(p, inp.parse_conversation, limit) for p in cfg.general],
            system=inp.system_prompt(data_paths),
            trained_leaves=inp.trained_leaves(data_paths),
            judge=cfg.judge_dict(),
            examples=pick_examples(held_out.rows, cfg.evaluation.examples if examples else 0),
        )

    @property
    def answered(self) -> list[int]:
        """The held-out items every model answers: all of them with a judge, else the examples."""
        return list(range(len(self.held_out.rows))) if self.judge is not None else sorted(self.examples)

    def unseen(self, items: list[inp.MCQ] | list[inp.HeldOut]) -> set[int]:
        """Indices of items whose leaf the training data does not name (none when the data names no leaves)."""
        if not self.trained_leaves:
            return set()
        return {i for i, it in enumerate(items) if it.leaf not in self.trained_leaves}

    @property
    def empty(self) -> bool:
        return not (self.mcq.rows or self.held_out.rows or any(g.rows for g in self.general))

    def stats(self) -> dict[str, object]:
        return {
            "multiple_choice": self.mcq.stats(),
            "held_out": self.held_out.stats(),
            "general": [g.stats() for g in self.general],
            "system_prompt": self.system,
            "trained_leaves": len(self.trained_leaves),
        }


def is_knowledge(item: inp.HeldOut) -> bool:
    return item.type == "knowledge" or item.leaf.startswith("knowledge/")


def pick_examples(rows: list[inp.HeldOut], n: int) -> list[int]:
    """``n`` held-out items to show: knowledge leaves' items first, then the others; within each, one item per leaf
    in turn (each leaf's first item, then its second, ...), leaves and items in file order. Deterministic: the rows
    are already the stable subset of ``load_jsonl``."""
    rank: dict[str, int] = defaultdict(int)
    keyed = []
    for i, row in enumerate(rows):
        keyed.append((not is_knowledge(row), rank[row.leaf], i))
        rank[row.leaf] += 1
    return [i for *_, i in sorted(keyed)[: max(n, 0)]]


@dataclass
class ModelScores:
    name: str
    path: str
    mcq: MCQResult | None = None
    held_out: LossResult | None = None
    general: list[LossResult | None] = field(default_factory=list)
    answers: dict[int, str | None] | None = None  # held-out index -> greedy answer (None: prompt too long)
    judged: Judged | None = None
    seconds: float = 0.0


def check_model_dir(path: str, what: str) -> None:
    if not (Path(path) / "config.json").is_file():
        raise InputError(f"{what} {path} is not a Hugging Face model directory (no config.json)")


def score_model(name: str, path: str, plan: Plan) -> ModelScores:
    t0 = time.perf_counter()
    if plan.empty:
        log.warning("%s: nothing to score (no multipleChoice, heldOut or general rows)", name)
        return ModelScores(name, path, general=[None] * len(plan.general))
    log.info("scoring %s (%s)", name, path)
    lm = LM.load(path)
    try:
        ms = ModelScores(name, path)
        if plan.mcq.rows:
            ms.mcq = mcq(lm, plan.mcq.rows, plan.system)
        if plan.held_out.rows:
            ms.held_out = held_out_loss(lm, plan.held_out.rows, plan.system)
            if asked := plan.answered:
                rows = [plan.held_out.rows[i] for i in asked]
                prompts = [inp.prompt_messages(plan.system, q.question, q.context) for q in rows]
                ms.answers = dict(zip(asked, generate(lm, prompts), strict=True))
        ms.general = [conversation_loss(lm, g.rows, "general") if g.rows else None for g in plan.general]
    finally:
        lm.close()
    ms.seconds = round(time.perf_counter() - t0, 1)
    return ms


def judge_all(plan: Plan, models: list[ModelScores]) -> None:
    """Rate every model's answers with the judge (no-op without a judge or answers)."""
    with_answers = [m for m in models if m.answers is not None]
    if plan.judge is None or not with_answers:
        return
    rows = plan.held_out.rows
    answers = [[(m.answers or {}).get(i) for i in range(len(rows))] for m in with_answers]
    judged = judge_answers(plan.judge, rows, answers)
    for m, j in zip(with_answers, judged, strict=True):
        m.judged = j
