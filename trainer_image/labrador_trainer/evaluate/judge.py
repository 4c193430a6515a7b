"""Judge-scored answers: an LLM judge (vLLM in the pod or an OpenAI-compatible endpoint, through
``labrador_trainer.sdg.llm``) rates each answer against the reference answer, in one of two styles:

- ``mt-bench`` (default): MT-Bench's reference-guided single-answer grading, 1-10, ``Rating: [[N]]``;
- ``dk-bench``: a DK-Bench-like domain-knowledge rubric, 1-5, ``Score: N``.

Each rating keeps the judge's reason: its reply before the rating, stripped and truncated."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from labrador_trainer.evaluate.inputs import HeldOut

log = logging.getLogger("labrador_trainer.evaluate")

Style = Literal["mt-bench", "dk-bench"]
JUDGE_MAX_TOKENS = 1024
REASON_MAX_CHARS = 600

SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant to the "
    "user question displayed below. Your evaluation should consider correctness and helpfulness. You will be given a "
    "reference answer and the assistant's answer. Begin your evaluation by comparing the assistant's answer with the "
    "reference answer. Identify and correct any mistakes. Be as objective as possible. After providing your "
    "explanation, you must rate the response on a scale of 1 to 10 by strictly following this format: "
    '"[[rating]]", for example: "Rating: [[5]]".'
)
DK_SYSTEM = (
    "You grade how well an AI assistant knows a subject. You are given a question, the reference answer written by "
    "a domain expert, and the assistant's answer. Judge only whether the assistant's answer states the facts of the "
    "reference answer correctly and completely; style, length and politeness do not matter, and facts the "
    "reference does not contain earn nothing unless they contradict it (then they count against the answer).\n\n"
    "Scores:\n"
    "1 - wrong, unrelated or empty: none of the reference's facts, or facts that contradict it.\n"
    "2 - mostly wrong: a small part of the reference's facts, with errors or contradictions.\n"
    "3 - partly right: about half of the reference's facts, or all of them with a notable error.\n"
    "4 - mostly right: nearly all of the reference's facts, with at most a minor omission or imprecision.\n"
    "5 - fully right: every fact of the reference answer, correct, and nothing that contradicts it.\n\n"
    "First explain your judgement in a few sentences. Then end your reply with one last line of exactly this form, "
    'and give no other score anywhere: "Score: N", where N is 1, 2, 3, 4 or 5.'
)

_RATING = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
_SCORE = re.compile(r"\bscore\s*[:=]\s*\**\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
# what is left of the rating's own line ("Rating:", "**Score**:") at the end of the reason
_LABEL = re.compile(r"[\s*#>_-]*(?:(?:final\s+)?(?:rating|score|verdict)\s*[:=]?)?[\s*_]*$", re.IGNORECASE)


def _user(item: HeldOut, answer: str) -> str:
    context = f"[Context]\n{item.context.strip()}\n\n" if item.context else ""
    return (
        f"{context}[Question]\n{item.question.strip()}\n\n"
        f"[The Start of Reference Answer]\n{item.answer.strip()}\n[The End of Reference Answer]\n\n"
        f"[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]"
    )


def _single(values: list[str], low: float, high: float, *, integer: bool) -> float | None:
    found = {float(v) for v in values}
    if len(found) != 1:
        return None
    (value,) = found
    if integer and not value.is_integer():
        return None
    return value if low <= value <= high else None


def _reason(text: str, start: int | None) -> str | None:
    """The reply before the rating (the whole reply when it has none), its rating label removed, stripped and cut
    to REASON_MAX_CHARS."""
    before = text if start is None else _LABEL.sub("", text[:start])
    before = before.strip()
    if not before:
        return None
    return before if len(before) <= REASON_MAX_CHARS else before[: REASON_MAX_CHARS - 1].rstrip() + "…"


@dataclass(frozen=True)
class Rubric:
    """One judging style: its prompt, its scale and its strict parser."""

    style: Style
    scale_max: int
    system: str
    pattern: re.Pattern[str]
    integer: bool  # ratings must be whole numbers

    def messages(self, item: HeldOut, answer: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": _user(item, answer)}]

    def parse(self, text: str | None) -> float | None:
        """The rating, 1 <= N <= scale_max; None when there is none, it is out of range, or the text gives
        different ratings."""
        if not text:
            return None
        return _single(self.pattern.findall(text), 1.0, float(self.scale_max), integer=self.integer)

    def reason(self, text: str | None) -> str | None:
        if not text:
            return None
        m = self.pattern.search(text)
        return _reason(text, m.start() if m else None)


RUBRICS: dict[str, Rubric] = {
    "mt-bench": Rubric("mt-bench", 10, SYSTEM, _RATING, integer=False),
    "dk-bench": Rubric("dk-bench", 5, DK_SYSTEM, _SCORE, integer=True),
}


def rubric(style: str | None) -> Rubric:
    try:
        return RUBRICS[style or "mt-bench"]
    except KeyError:
        raise ValueError(f"unknown judge style {style!r} (expected one of {', '.join(RUBRICS)})") from None


def judge_messages(item: HeldOut, answer: str, style: Style = "mt-bench") -> list[dict[str, str]]:
    return rubric(style).messages(item, answer)


def parse_rating(text: str | None, style: Style = "mt-bench") -> float | None:
    """MT-Bench: ``[[N]]``, 1 <= N <= 10; DK-Bench: ``Score: N``, N a whole number 1..5. None when there is none,
    it is out of range, or the text gives different ratings."""
    return rubric(style).parse(text)


def parse_reason(text: str | None, style: Style = "mt-bench") -> str | None:
    return rubric(style).reason(text)


@dataclass
class Judged:
    """Ratings and the judge's reasons per held-out item (None: not rated) and why items were not rated."""

    ratings: list[float | None]
    reasons: list[str | None] = field(default_factory=list)
    style: Style = "mt-bench"
    scale_max: int = 10
    no_answer: int = 0  # the model under test gave none (prompt too long)
    judge_errors: int = 0  # the judge request failed
    unparseable: int = 0  # the judge replied without one valid rating

    def __post_init__(self) -> None:
        if not self.reasons:
            self.reasons = [None] * len(self.ratings)

    def summary(self) -> dict[str, Any] | None:
        rated = [r for r in self.ratings if r is not None]
        if not rated:
            return None
        return {
            "style": self.style,
            "scale": [1, self.scale_max],
            "mean_rating": sum(rated) / len(rated),
            "n": len(rated),
            "no_answer": self.no_answer,
            "judge_errors": self.judge_errors,
            "unparseable": self.unparseable,
        }


def judge_answers(cfg: dict[str, Any], items: list[HeldOut], answers: list[list[str | None]]) -> list[Judged]:
    """Rate every model's answers (``answers[m][i]`` answers ``items[i]``) in one batch through one judge, in the
    style ``cfg["style"]`` names (default mt-bench)."""
    from labrador_trainer.sdg.llm import ChatRequest, make_generator

    rb = rubric(cfg.get("style"))
    reqs, where = [], []
    out = [Judged([None] * len(items), style=rb.style, scale_max=rb.scale_max) for _ in answers]
    for m, model_answers in enumerate(answers):
        for i, (item, ans) in enumerate(zip(items, model_answers, strict=True)):
            if ans is None:
                out[m].no_answer += 1
                continue
            reqs.append(ChatRequest(rb.messages(item, ans), max_tokens=JUDGE_MAX_TOKENS, temperature=0.0, seed=0))
            where.append((m, i))
    if not reqs:
        return out
    gen = make_generator(cfg, seed=0)
    try:
        log.info("judge (%s, 1-%d): rating %d answers", rb.style, rb.scale_max, len(reqs))
        done = gen.generate(reqs)
    finally:
        gen.close()
    for (m, i), c in zip(where, done, strict=True):
        if c.error is not None:
            out[m].judge_errors += 1
            continue
        rating = rb.parse(c.text)
        if rating is None:
            out[m].unparseable += 1
        out[m].ratings[i] = rating
        out[m].reasons[i] = rb.reason(c.text)
    for j in out:
        if j.judge_errors or j.unparseable:
            log.warning("judge: %d errors, %d unparseable ratings", j.judge_errors, j.unparseable)
    return out
