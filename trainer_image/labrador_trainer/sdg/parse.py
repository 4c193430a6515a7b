"""Strict parsers for teacher output. Each returns ``None`` (or nothing) for malformed text; callers count drops."""

from __future__ import annotations

import re

_LABEL = r"(?:^|\n)[ \t]*\**\[?{}\]?\**[ \t]*:\**"
_QA = re.compile(
    _LABEL.format("Question")
    + r"(?P<q>.+?)"
    + _LABEL.format("Answer")
    + r"(?P<a>.+?)(?="
    + _LABEL.format("Question")
    + r"|\Z)",
    re.S | re.I,
)
_VERDICT = re.compile(r"^\W*(yes|no)\b", re.I)
MAX_QUESTION_CHARS = 1000
MAX_ANSWER_CHARS = 4000


def _clean(text: str) -> str:
    return re.sub(r"[ \t]+\n", "\n", text).strip()


def _ok_question(q: str) -> bool:
    return len(q.split()) >= 3 and len(q) <= MAX_QUESTION_CHARS


def parse_pairs(text: str | None) -> list[tuple[str, str]]:
    """Every ``Question: … Answer: …`` pair in ``text``; a pair with an empty or oversized part is skipped."""
    if not text:
        return []
    out = []
    for m in _QA.finditer(text):
        q, a = _clean(m.group("q")), _clean(m.group("a"))
        if _ok_question(q) and a and len(a) <= MAX_ANSWER_CHARS:
            out.append((q, a))
    return out


def parse_field(text: str | None, label: str, *, min_words: int = 1, max_chars: int = MAX_ANSWER_CHARS) -> str | None:
    """The value after ``label:`` when the reply starts with that label (up to another label, if any)."""
    if not text:
        return None
    m = re.match(r"\s*\**\[?" + re.escape(label) + r"\]?\**[ \t]*:\**(?P<v>.*)", text, re.S | re.I)
    if not m:
        return None
    value = re.split(r"\n[ \t]*\**\[?(?:Question|Answer|Context)\]?\**[ \t]*:", m.group("v"), flags=re.I)[0]
    value = _clean(value)
    if len(value.split()) < min_words or len(value) > max_chars:
        return None
    return value


def parse_question(text: str | None) -> str | None:
    q = parse_field(text, "Question", min_words=3, max_chars=MAX_QUESTION_CHARS)
    return q if q is not None and _ok_question(q) else None


def parse_verdict(text: str | None) -> bool | None:
    """A judge's verdict: the reply's first word, YES or NO (case-insensitive); anything else is malformed."""
    if not text:
        return None
    m = _VERDICT.match(text)
    return None if m is None else m.group(1).lower() == "yes"


def normalize(text: str) -> str:
    """For duplicate detection: lower case, words only."""
    return " ".join(re.findall(r"\w+", text.lower()))
