"""Splitting knowledge documents into chunks of about ``max_tokens`` teacher tokens, on paragraph boundaries."""

from __future__ import annotations

import re
from collections.abc import Callable

Counter = Callable[[str], int]


def _pieces(paragraph: str, count: Counter, max_tokens: int) -> list[str]:
    """A paragraph over budget, split into sentences, and a sentence over budget into word runs."""
    if count(paragraph) <= max_tokens:
        return [paragraph]
    out: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
        if count(sentence) <= max_tokens:
            out.append(sentence)
            continue
        words = sentence.split()
        step = max(1, len(words) * max_tokens // max(count(sentence), 1))
        out += [" ".join(words[i : i + step]) for i in range(0, len(words), step)]
    return out


def chunk_text(text: str, count: Counter, max_tokens: int = 500) -> list[str]:
    """Chunks of whole paragraphs (blank-line separated) up to ``max_tokens``; empty text gives no chunks."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    pieces = [piece for p in paragraphs for piece in _pieces(p, count, max_tokens)]
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for piece in pieces:
        n = count(piece)
        if current and size + n > max_tokens:
            chunks.append("\n\n".join(current))
            current, size = [], 0
        current.append(piece)
        size += n
    if current:
        chunks.append("\n\n".join(current))
    return chunks
