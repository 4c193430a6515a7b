"""Token budgets for seed examples, checked with a tokenizer.

Limits follow InstructLab's taxonomy guidance: a knowledge seed context at most 500 tokens, and a seed example
(context plus its question/answer pairs) at most 750 tokens; for skills, question + answer (+ context) at most
750 tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

CONTEXT_MAX_TOKENS = 500
EXAMPLE_MAX_TOKENS = 750

Counter = Callable[[str], int]


def load_counter(path: str | Path) -> Counter:
    """A token counter from a tokenizer directory or a ``.gguf`` file (slow: load once)."""
    from transformers import AutoTokenizer

    p = Path(path)
    if p.is_file() and p.suffix == ".gguf":
        tok = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
    else:
        tok = AutoTokenizer.from_pretrained(str(p))
    return lambda text: len(tok.encode(text, add_special_tokens=False))


def _s(v: Any) -> str:
    return v if isinstance(v, str) else ""


def check_budgets(contents: Mapping[str, Any], count: Counter) -> list[tuple[str, str]]:
    """(yaml_path, message) for each seed example over budget."""
    problems: list[tuple[str, str]] = []
    examples = contents.get("seed_examples")
    if not isinstance(examples, list):
        return problems
    for i, ex in enumerate(examples):
        if not isinstance(ex, Mapping):
            continue
        base = f".seed_examples[{i}]"
        ctx = count(_s(ex.get("context"))) if ex.get("context") else 0
        if "questions_and_answers" in ex and ctx > CONTEXT_MAX_TOKENS:
            problems.append((f"{base}.context", f"context has {ctx} tokens, over the limit of {CONTEXT_MAX_TOKENS}"))
        total = ctx
        qas = ex.get("questions_and_answers")
        pairs = qas if isinstance(qas, list) else [ex]
        for qa in pairs:
            if isinstance(qa, Mapping):
                total += count(_s(qa.get("question"))) + count(_s(qa.get("answer")))
        if total > EXAMPLE_MAX_TOKENS:
            msg = f"seed example has {total} tokens (context + questions and answers), over {EXAMPLE_MAX_TOKENS}"
            problems.append((base, msg))
    return problems
