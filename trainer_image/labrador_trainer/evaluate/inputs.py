"""The evaluation inputs (JSONL from `labrador-trainer mix`): rows validated one by one, malformed ones skipped and
counted, missing or empty files giving empty sets, and a deterministic subset of at most ``max_questions`` rows."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from labrador_trainer.files import iter_jsonl

log = logging.getLogger("labrador_trainer.evaluate")

T = TypeVar("T")


@dataclass(frozen=True)
class MCQ:
    id: str
    leaf: str
    question: str
    choices: tuple[str, ...]
    answer: int
    context: str | None = None


@dataclass(frozen=True)
class HeldOut:
    id: str
    leaf: str
    type: str
    question: str
    answer: str
    context: str | None = None


@dataclass(frozen=True)
class Conversation:
    id: str
    messages: tuple[dict[str, str], ...]
    unmask: bool = False


@dataclass
class Loaded(Generic[T]):
    """Rows kept (at most max_questions), and how many the file had and how many were malformed."""

    path: str | None
    rows: list[T] = field(default_factory=list)
    total: int = 0
    malformed: int = 0
    missing: bool = False

    def stats(self) -> dict[str, Any]:
        return {"path": self.path, "used": len(self.rows), "valid": self.total, "malformed": self.malformed}


def _str(row: dict[str, Any], key: str, *, empty: bool = False) -> str:
    v = row.get(key)
    if not isinstance(v, str) or (not empty and not v.strip()):
        raise ValueError(f"{key}: expected a non-empty string")
    return v


def _opt_str(row: dict[str, Any], key: str) -> str | None:
    v = row.get(key)
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if not isinstance(v, str):
        raise ValueError(f"{key}: expected a string or null")
    return v


def parse_mcq(row: dict[str, Any]) -> MCQ:
    choices = row.get("choices")
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c.strip() for c in choices):
        raise ValueError("choices: expected a list of at least 2 non-empty strings")
    answer = row.get("answer")
    if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < len(choices):
        raise ValueError(f"answer: expected an index into choices, got {answer!r}")
    return MCQ(
        id=str(row.get("id", "")),
        leaf=_str(row, "leaf"),
        question=_str(row, "question"),
        choices=tuple(choices),
        answer=answer,
        context=_opt_str(row, "context"),
    )


def parse_held_out(row: dict[str, Any]) -> HeldOut:
    return HeldOut(
        id=str(row.get("id", "")),
        leaf=_str(row, "leaf"),
        type=str(row.get("type") or "unknown"),
        question=_str(row, "question"),
        answer=_str(row, "answer"),
        context=_opt_str(row, "context"),
    )


def parse_conversation(row: dict[str, Any]) -> Conversation:
    msgs = row.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise ValueError("messages: expected a non-empty list")
    for m in msgs:
        if (
            not isinstance(m, dict)
            or m.get("role") not in ("system", "user", "assistant")
            or not isinstance(m.get("content"), str)
        ):
            raise ValueError("messages: each needs role system|user|assistant and string content")
    if not any(m["role"] == "assistant" and m["content"] for m in msgs) and not row.get("unmask"):
        raise ValueError("messages: no assistant content to score")
    return Conversation(
        id=str(row.get("id", "")),
        messages=tuple({"role": m["role"], "content": m["content"]} for m in msgs),
        unmask=bool(row.get("unmask", False)),
    )


def _key(row_id: str, index: int) -> str:
    return hashlib.sha256(f"{row_id}\0{index}".encode()).hexdigest()


def load_jsonl(path: str | None, parse: Callable[[dict[str, Any]], T], limit: int | None) -> Loaded[T]:
    """Parse every line of ``path``; keep ``limit`` rows chosen by a hash of their id (spread over leaves and stable
    from run to run), in file order."""
    out: Loaded[T] = Loaded(path=path)
    if not path:
        return out
    p = Path(path)
    if not p.is_file():
        log.warning("input %s not found: its measure is skipped", path)
        out.missing = True
        return out
    parsed: list[tuple[str, T]] = []
    with p.open(encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("not a JSON object")
                parsed.append((_key(str(row.get("id", "")), n), parse(row)))
            except ValueError as e:  # json.JSONDecodeError is a ValueError
                out.malformed += 1
                if out.malformed <= 3:
                    log.warning("%s line %d skipped: %s", path, n + 1, e)
    out.total = len(parsed)
    if limit is not None and len(parsed) > limit:
        keep = {k for k, _ in sorted(parsed, key=lambda kv: kv[0])[:limit]}
        parsed = [kv for kv in parsed if kv[0] in keep]
    out.rows = [r for _, r in parsed]
    if out.malformed:
        log.warning("%s: %d malformed rows skipped", path, out.malformed)
    return out


def _rows(path: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file, skipping unreadable lines; nothing when the file does not exist."""
    rows = iter_jsonl(path, missing_ok=True, skip_invalid=True, errors="replace")
    return (row for row in rows if isinstance(row, dict))


def system_prompt(paths: list[str]) -> str | None:
    """The system message the run trained with: the first one found in the training data (None if none)."""
    for path in paths:
        for row in _rows(path):
            msgs = row.get("messages") or []
            for m in msgs if isinstance(msgs, list) else []:
                if isinstance(m, dict) and m.get("role") == "system" and isinstance(m.get("content"), str):
                    return m["content"]
            break  # the first row decides
    return None


def trained_leaves(paths: list[str]) -> set[str]:
    """Leaves the training data names (``metadata.leaf`` as dict or JSON string); empty when it names none."""
    leaves: set[str] = set()
    for path in paths:
        for row in _rows(path):
            meta = row.get("metadata")
            if isinstance(meta, str):
                try:
                    meta = json.loads(meta)
                except ValueError:
                    continue
            if isinstance(meta, dict) and isinstance(meta.get("leaf"), str):
                leaves.add(meta["leaf"])
    return leaves


def user_turn(question: str, context: str | None) -> str:
    return f"{context.strip()}\n\n{question.strip()}" if context else question.strip()


def prompt_messages(system: str | None, question: str, context: str | None) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system}] if system else []
    return [*msgs, {"role": "user", "content": user_turn(question, context)}]
