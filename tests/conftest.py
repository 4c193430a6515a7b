"""Shared test helpers: repository paths and the example resources as data."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
#: The public InstructLab taxonomy and its knowledge documents (Apache-2.0, see their LICENSE files), vendored so a
#: clean checkout tests without anything beside it.
FIXTURES = ROOT / "tests" / "fixtures"


def load_script(name: str, relpath: str) -> ModuleType:
    """A repository script (hack/, bench/) imported as module ``name``, so tests drive the same code users run."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relpath)
    assert spec and spec.loader, relpath
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def load_example(name: str) -> dict[str, Any]:
    """One of examples/*.yaml as a dict (tests adjust copies of it)."""
    return yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())


@pytest.fixture
def examples() -> dict[str, dict[str, Any]]:
    return {p.stem: yaml.safe_load(p.read_text()) for p in sorted(EXAMPLES.glob("*.yaml"))}
