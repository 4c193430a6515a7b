"""Judge-scored answers: an LLM judge (vLLM in the pod or an OpenAI-compatible endpoint, through
``labrador_trainer.sdg.llm``) rates each answer 1-10 against the reference, MT-Bench style ("Rating: [[N]]")."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from labrador_trainer.evaluate.inputs import HeldOut

log = logging.getLogger("labrador_trainer.evaluate")

JUDGE_MAX_TOKENS = 1024
SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant to the "
    "user question displayed below. Your evaluation should consider correctness and helpfulness. You will be given a "
    "reference answer and the assistant's answer. Begin your evaluation by comparing the assistant's answer with the "
    "reference answer. Identify and correct any mistakes. Be as objective as possible. After providing your "
    "explanation, you must rate the response on a scale of 1 to 10 by strictly following this format: "
    '"[[rating]]", for example: "Rating: [[5]]".'
)
_RATING = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")


def judge_messages(item: HeldOut, answer: str) -> list[dict[str, str]]:
    context = f"[Context]\n{item.context.strip()}\n\n" if item.context else ""
    user = (
        f"{context}[Question]\n{item.question.strip()}\n\n"
        f"[The Start of Reference Answer]\n{item.answer.strip()}\n[The End of Reference Answer]\n\n"
        f"[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]"
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def parse_rating(text: str | None) -> float | None:
    """The rating in ``[[N]]``, 1 <= N <= 10; None when there is none, it is out of range, or the text gives
    different ratings."""
    if not text:
        return None
    found = {float(m) for m in _RATING.findall(text)}
    if len(found) != 1:
        return None
    (value,) = found
    return value if 1.0 <= value <= 10.0 else None


@dataclass
class Judged:
    """Ratings per held-out item (None: not rated) and why items were not rated."""

    ratings: list[float | None]
    no_answer: int = 0  # the model under test gave none (prompt too long)
    judge_errors: int = 0  # the judge request failed
    unparseable: int = 0  # the judge replied without one valid [[rating]]

    def summary(self) -> dict[str, Any] | None:
        rated = [r for r in self.ratings if r is not None]
        if not rated:
            return None
        return {
            "mean_rating": sum(rated) / len(rated),
            "n": len(rated),
            "no_answer": self.no_answer,
            "judge_errors": self.judge_errors,
            "unparseable": self.unparseable,
        }


def judge_answers(cfg: dict[str, Any], items: list[HeldOut], answers: list[list[str | None]]) -> list[Judged]:
    """Rate every model's answers (``answers[m][i]`` answers ``items[i]``) in one batch through one judge."""
    from labrador_trainer.sdg.llm import ChatRequest, make_generator

    reqs, where = [], []
    out = [Judged([None] * len(items)) for _ in answers]
    for m, model_answers in enumerate(answers):
        for i, (item, ans) in enumerate(zip(items, model_answers, strict=True)):
            if ans is None:
                out[m].no_answer += 1
                continue
            reqs.append(ChatRequest(judge_messages(item, ans), max_tokens=JUDGE_MAX_TOKENS, temperature=0.0, seed=0))
            where.append((m, i))
    if not reqs:
        return out
    gen = make_generator(cfg, seed=0)
    try:
        log.info("judge: rating %d answers", len(reqs))
        done = gen.generate(reqs)
    finally:
        gen.close()
    for (m, i), c in zip(where, done, strict=True):
        if c.error is not None:
            out[m].judge_errors += 1
            continue
        rating = parse_rating(c.text)
        if rating is None:
            out[m].unparseable += 1
        out[m].ratings[i] = rating
    for j in out:
        if j.judge_errors or j.unparseable:
            log.warning("judge: %d errors, %d unparseable ratings", j.judge_errors, j.unparseable)
    return out
