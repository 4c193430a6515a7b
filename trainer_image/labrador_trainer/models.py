"""Materialise an HF model directory from a GGUF file (dequantised, safetensors), cached once.

vLLM and the trainer need a normal HF directory; transformers dequantises GGUF on load (``gguf_file=``). A
truncated copy (first N decoder layers, same tokenizer) makes CPU training tests fast.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

CACHE_DIR = Path(os.environ.get("LABRADOR_CACHE", Path.home() / ".cache" / "labrador")) / "models"
#: bump when what prepare_model writes changes (a new key; the old build is pruned)
FORMAT = 1


@functools.cache
def _content_hash(gguf: Path) -> str:
    """The file's sha256: the key follows the weights, not the path or mtime a fresh virtualenv gives them."""
    h = hashlib.sha256()
    with gguf.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _prefix(gguf: Path, layers: int | None) -> str:
    stem = gguf.name.removesuffix(".gguf")
    return f"{stem}-L{layers}-" if layers else f"{stem}-"


def _key(gguf: Path, layers: int | None) -> str:
    h = hashlib.sha256(f"{_content_hash(gguf.resolve())}:{FORMAT}:{layers}".encode()).hexdigest()[:12]
    return _prefix(gguf, layers) + h


def _prune(gguf: Path, layers: int | None, keep: Path) -> None:
    """Remove the cache's other builds of this model and cut (older weights or format): one copy per key."""
    prefix = _prefix(gguf, layers)
    for old in keep.parent.glob(prefix + "*"):
        rest = old.name.removeprefix(prefix)
        if old != keep and old.is_dir() and len(rest) == 12:  # "L2-<hash>" under the full model's prefix: 15
            shutil.rmtree(old, ignore_errors=True)


def prepare_model(gguf: str | Path, out: str | Path, *, layers: int | None = None) -> Path:
    """Write a dequantised HF directory for ``gguf`` at ``out`` (atomically: temp dir, then rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf, out = Path(gguf), Path(out)
    if (out / "config.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        if layers is not None:
            config.num_hidden_layers = layers
            if getattr(config, "layer_types", None):
                config.layer_types = config.layer_types[:layers]
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, _ = model.load_state_dict(loaded.state_dict(), strict=False)
        if [k for k in missing if "lm_head" not in k]:
            raise RuntimeError(f"weights missing after dequantisation: {missing[:5]}")
        model.tie_weights()
        del loaded
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def cached_model(gguf: str | Path, *, layers: int | None = None) -> Path:
    """The HF directory for ``gguf`` under ``~/.cache/labrador/models/<name>-<hash>/``, made on first use."""
    gguf = Path(gguf)
    out = CACHE_DIR / _key(gguf, layers)
    if not (out / "config.json").exists():
        prepare_model(gguf, out, layers=layers)
        _prune(gguf, layers, out)
    return out
