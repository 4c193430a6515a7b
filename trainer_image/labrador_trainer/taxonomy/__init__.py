"""Taxonomy workloads: load, validate (instructlab-schema), diff against a base, fetch documents, sync.

The names below are imported on first use: ``taxonomy/cli.py`` registers its subcommands on every start of
``labrador-trainer`` (``train`` workers included), and validation's imports (jsonschema) take more than half a second.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labrador_trainer.taxonomy.models import Issue, Leaf, Report
    from labrador_trainer.taxonomy.sync import SyncOptions, sync_taxonomy
    from labrador_trainer.taxonomy.validate import ValidateOptions, validate_taxonomy

_MODULE_OF = {
    "Issue": "models",
    "Leaf": "models",
    "Report": "models",
    "SyncOptions": "sync",
    "sync_taxonomy": "sync",
    "ValidateOptions": "validate",
    "validate_taxonomy": "validate",
}

__all__ = ["Issue", "Leaf", "Report", "SyncOptions", "ValidateOptions", "sync_taxonomy", "validate_taxonomy"]


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF:
        return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
