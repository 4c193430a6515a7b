"""Shared test helpers: repository paths and the example resources as data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
#: The public InstructLab taxonomy and its knowledge documents (Apache-2.0, see their LICENSE files), vendored so a
#: clean checkout tests without anything beside it.
FIXTURES = ROOT / "tests" / "fixtures"


def load_example(name: str) -> dict[str, Any]:
    """One of examples/*.yaml as a dict (tests adjust copies of it)."""
    return yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())


@pytest.fixture
def examples() -> dict[str, dict[str, Any]]:
    return {p.stem: yaml.safe_load(p.read_text()) for p in sorted(EXAMPLES.glob("*.yaml"))}
