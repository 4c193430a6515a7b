"""The three InstructLab flows as lists of stages. A stage turns one item into a chat request (few-shot turns from
the leaf's seed examples) and the teacher's reply into zero or more items, or a drop reason.

- knowledge: ``qa`` (3 pairs per document chunk) → judges ``faithfulness``, ``relevancy``, ``question_quality``
- freeform skill: ``question`` → ``question_quality`` → ``answer`` → ``pair_quality``
- grounded skill: ``context`` → ``question`` → ``question_quality`` → ``answer`` → ``pair_quality``

The ``simple`` pipeline drops the judges (for small teachers). Every drop has a reason: ``malformed`` (the reply did
not parse), ``error`` (the request failed), a judge's name, ``duplicate`` or ``seed_copy`` (final dedup).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labrador_trainer.sdg import parse
from labrador_trainer.sdg.llm import ChatRequest
from labrador_trainer.sdg.prompts import Template

Item = dict[str, Any]
ICL_EXAMPLES = 2  # few-shot turns per request (skills); knowledge uses one seed context with its three pairs


def leaf_slug(path: str) -> str:
    """A leaf's directory name in the output: its taxonomy path without ``/qna.yaml``, ``/`` → ``__``."""
    return path.removesuffix("/qna.yaml").replace("/", "__")


@dataclass
class LeafWork:
    """One leaf of the shard: what its flow needs (seed examples, document chunks) and how much to generate."""

    path: str  # e.g. knowledge/science/birds/qna.yaml
    type: str  # knowledge | freeform_skill | grounded_skill
    target: int
    seeds: list[dict[str, Any]]
    description: str  # task_description (skills) or domain (knowledge)
    chunks: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return leaf_slug(self.path)

    def seed_questions(self) -> set[str]:
        out = set()
        for s in self.seeds:
            for qa in s.get("questions_and_answers") or [s]:
                if isinstance(qa, dict) and isinstance(qa.get("question"), str):
                    out.add(parse.normalize(qa["question"]))
        return out


Outcome = tuple[list[Item], str | None]  # new items, or a drop reason


@dataclass(frozen=True)
class Stage:
    name: str
    template: str
    request: Callable[[Template, LeafWork, Item, random.Random], tuple[list[tuple[dict, dict]], dict]]
    apply: Callable[[Item, str | None], Outcome]
    generates: bool = False  # the stage whose outputs count as "generated" samples
    fanout: int = 1  # at most this many output items per input (a progress estimate; filters keep ≤ 1)


def _rng_pick(rng: random.Random, seq: list[Any], k: int) -> list[Any]:
    return rng.sample(seq, min(k, len(seq)))


def _skill_seeds(leaf: LeafWork, rng: random.Random) -> list[dict[str, Any]]:
    return _rng_pick(rng, [s for s in leaf.seeds if isinstance(s, dict)], ICL_EXAMPLES)


# -- knowledge ------------------------------------------------------------------------------------------------------
def _qa_request(t: Template, leaf: LeafWork, item: Item, rng: random.Random) -> tuple[list, dict]:
    seed = rng.choice(leaf.seeds)
    pairs = [qa for qa in seed.get("questions_and_answers") or [] if isinstance(qa, dict)]
    shots = [({"domain": leaf.description, "document": seed.get("context", "")}, {"pairs": pairs})]
    return shots, {"domain": leaf.description, "document": item["chunk"]}


def _qa_apply(item: Item, text: str | None) -> Outcome:
    pairs = parse.parse_pairs(text)
    if not pairs:
        return [], "malformed"
    return [{**item, "question": q, "answer": a} for q, a in pairs[:3]], None


def _seed_pairs(leaf: LeafWork) -> list[dict[str, Any]]:
    """Every seed Q/A of the leaf as {context, question, answer} (knowledge pairs carry their seed's context)."""
    out = []
    for s in leaf.seeds:
        for qa in s.get("questions_and_answers") or [s]:
            if isinstance(qa, dict) and isinstance(qa.get("question"), str) and isinstance(qa.get("answer"), str):
                out.append({"context": s.get("context") or "", "question": qa["question"], "answer": qa["answer"]})
    return out


JudgeVars = Callable[[LeafWork, Item], dict]


def _judge(name: str, build: JudgeVars) -> Stage:
    """A YES/NO judge. Its few-shot turns are two seed pairs: one as it is (YES) and one with another seed's answer
    swapped in (NO), so even a small teacher sees the verdict format and a real negative."""

    def request(t: Template, leaf: LeafWork, item: Item, rng: random.Random) -> tuple[list, dict]:
        pairs = _seed_pairs(leaf)
        shots: list[tuple[dict, dict]] = []
        if len(pairs) >= 2:
            good, other = rng.sample(pairs, 2)
            bad = {**good, "answer": other["answer"]} if other["answer"] != good["answer"] else None
            if name == "question_quality":  # the NO example: a question about the other pair's material
                bad = {**good, "chunk": other["context"] or leaf.description, "context": other["context"]}
                bad["question"] = "What is it?"
            shots.append((build(leaf, _as_item(good)), {"verdict": "YES"}))
            if bad is not None:
                shots.append((build(leaf, _as_item(bad)), {"verdict": "NO"}))
            rng.shuffle(shots)
        return shots, build(leaf, item)

    def apply(item: Item, text: str | None) -> Outcome:
        verdict = parse.parse_verdict(text)
        if verdict is None:
            return [], "malformed"
        return ([item], None) if verdict else ([], name)

    return Stage(name, f"judge_{name.removesuffix('_quality')}", request, apply)


def _as_item(pair: dict[str, Any]) -> Item:
    return {"chunk": pair.get("chunk", pair["context"]), **pair}


FAITHFULNESS = _judge(
    "faithfulness", lambda leaf, it: {"document": it["chunk"], "question": it["question"], "answer": it["answer"]}
)
RELEVANCY = _judge("relevancy", lambda leaf, it: {"question": it["question"], "answer": it["answer"]})
QUESTION_QUALITY = _judge(
    "question_quality",
    lambda leaf, it: {"material": it.get("chunk") or it.get("context") or leaf.description, "question": it["question"]},
)
PAIR_QUALITY = _judge(
    "pair_quality",
    lambda leaf, it: {
        "task_description": leaf.description,
        "context": it.get("context"),
        "question": it["question"],
        "answer": it["answer"],
    },
)
PAIRS_PER_KNOWLEDGE_REQUEST = 3
QA = Stage("qa", "knowledge_qa", _qa_request, _qa_apply, generates=True, fanout=PAIRS_PER_KNOWLEDGE_REQUEST)


# -- skills ---------------------------------------------------------------------------------------------------------
def _field_apply(key: str, label: str, min_words: int = 1) -> Callable[[Item, str | None], Outcome]:
    def apply(item: Item, text: str | None) -> Outcome:
        value = (
            parse.parse_question(text) if label == "Question" else parse.parse_field(text, label, min_words=min_words)
        )
        return ([{**item, key: value}], None) if value else ([], "malformed")

    return apply


def _ff_question(t: Template, leaf: LeafWork, item: Item, rng: random.Random) -> tuple[list, dict]:
    shots = [({"task_description": leaf.description}, {"question": s["question"]}) for s in _skill_seeds(leaf, rng)]
    return shots, {"task_description": leaf.description}


def _ff_answer(t: Template, leaf: LeafWork, item: Item, rng: random.Random) -> tuple[list, dict]:
    shots = [
        ({"task_description": leaf.description, "question": s["question"]}, {"answer": s["answer"]})
        for s in _skill_seeds(leaf, rng)
    ]
    return shots, {"task_description": leaf.description, "question": item["question"]}


def _gr_context(t: Template, leaf: LeafWork, item: Item, rng: random.Random) -> tuple[list, dict]:
    shots = [
        ({"task_description": leaf.description}, {"context": s.get("context", "")}) for s in _skill_seeds(leaf, rng)
    ]
    return shots, {"task_description": leaf.description}


def _gr_question(t: Template, leaf: LeafWork, item: Item, rng: random.Random) -> tuple[list, dict]:
    shots = [
        ({"task_description": leaf.description, "context": s.get("context", "")}, {"question": s["question"]})
        for s in _skill_seeds(leaf, rng)
    ]
    return shots, {"task_description": leaf.description, "context": item["context"]}


def _gr_answer(t: Template, leaf: LeafWork, item: Item, rng: random.Random) -> tuple[list, dict]:
    shots = [
        (
            {"task_description": leaf.description, "context": s.get("context", ""), "question": s["question"]},
            {"answer": s["answer"]},
        )
        for s in _skill_seeds(leaf, rng)
    ]
    return shots, {"task_description": leaf.description, "context": item["context"], "question": item["question"]}


FF_QUESTION = Stage("question", "freeform_question", _ff_question, _field_apply("question", "Question"), generates=True)
FF_ANSWER = Stage("answer", "freeform_answer", _ff_answer, _field_apply("answer", "Answer"))
GR_CONTEXT = Stage("context", "grounded_context", _gr_context, _field_apply("context", "Context", 5), generates=True)
GR_QUESTION = Stage("question", "grounded_question", _gr_question, _field_apply("question", "Question"))
GR_ANSWER = Stage("answer", "grounded_answer", _gr_answer, _field_apply("answer", "Answer"))

FLOWS: dict[str, dict[str, list[Stage]]] = {
    "full": {
        "knowledge": [QA, FAITHFULNESS, RELEVANCY, QUESTION_QUALITY],
        "freeform_skill": [FF_QUESTION, QUESTION_QUALITY, FF_ANSWER, PAIR_QUALITY],
        "grounded_skill": [GR_CONTEXT, GR_QUESTION, QUESTION_QUALITY, GR_ANSWER, PAIR_QUALITY],
    },
    "simple": {
        "knowledge": [QA],
        "freeform_skill": [FF_QUESTION, FF_ANSWER],
        "grounded_skill": [GR_CONTEXT, GR_QUESTION, GR_ANSWER],
    },
}


def initial_count(leaf_type: str, target: int) -> int:
    """How many first-stage requests a leaf of ``target`` samples makes (``initial_items``, given document chunks)."""
    return -(-target // PAIRS_PER_KNOWLEDGE_REQUEST) if leaf_type == "knowledge" else target


def initial_items(leaf: LeafWork) -> list[Item]:
    """The first stage's inputs: for knowledge one request per three samples, cycling over the chunks."""
    if leaf.type == "knowledge":
        if not leaf.chunks:
            return []
        n = initial_count(leaf.type, leaf.target)
        return [{"chunk": leaf.chunks[i % len(leaf.chunks)], "chunk_index": i % len(leaf.chunks)} for i in range(n)]
    return [{} for _ in range(leaf.target)]


def build_request(stage: Stage, t: Template, leaf: LeafWork, item: Item, rng: random.Random, seed: int) -> ChatRequest:
    shots, final = stage.request(t, leaf, item, rng)
    return ChatRequest(t.messages(shots, final), t.max_tokens, t.temperature, seed)
