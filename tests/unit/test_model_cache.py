"""The converted-model cache: keyed by the GGUF's content (not its path or mtime), one build per model and cut."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labrador_trainer import models


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    made: list[Path] = []

    def fake_prepare(gguf: Path, out: Path, *, layers: int | None = None) -> Path:
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        made.append(out)
        return out

    monkeypatch.setattr(models, "CACHE_DIR", tmp_path / "models")
    monkeypatch.setattr(models, "prepare_model", fake_prepare)
    models._content_hash.cache_clear()
    return tmp_path


def _gguf(where: Path, content: bytes) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    f = where / "Tiny.Q4_1.gguf"
    f.write_bytes(content)
    return f


def test_the_same_weights_in_another_virtualenv_hit_the_cache(cache: Path) -> None:
    a = models.cached_model(_gguf(cache / "venv-a", b"weights"))
    b_file = _gguf(cache / "venv-b", b"weights")
    os.utime(b_file, (1, 1))
    assert models.cached_model(b_file) == a
    assert sorted(p.name for p in (cache / "models").iterdir()) == [a.name]


def test_new_weights_replace_the_old_build_and_cuts_are_kept_apart(cache: Path) -> None:
    full = models.cached_model(_gguf(cache / "v1", b"old"))
    cut = models.cached_model(_gguf(cache / "v1", b"old"), layers=2)
    assert cut.name.startswith("Tiny.Q4_1-L2-") and full != cut
    newer = models.cached_model(_gguf(cache / "v2", b"new"))
    left = sorted(p.name for p in (cache / "models").iterdir())
    assert left == sorted([newer.name, cut.name]), "the old full build is pruned, the 2-layer cut stays"
