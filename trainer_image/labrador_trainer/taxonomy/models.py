"""Typed results of taxonomy validation (the CLI only formats them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

LeafType = Literal["knowledge", "freeform_skill", "grounded_skill"]


@dataclass(frozen=True)
class Issue:
    """An error or warning on one file; ``line`` is 1-based, 0 for whole-file issues."""

    path: str
    line: int
    message: str


@dataclass
class Leaf:
    """One taxonomy leaf (a ``qna.yaml``) and what validation learned about it."""

    path: str
    type: LeafType
    seed_examples: int
    valid: bool = True
    documents: list[str] = field(default_factory=list)
    commit: str | None = None


@dataclass
class Report:
    """The whole verdict: ``valid`` is true when there is no error."""

    leaves: list[Leaf] = field(default_factory=list)
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    revision: str | None = None

    @property
    def valid(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"valid": self.valid}
        if self.revision is not None:
            out["revision"] = self.revision
        out["leaves"] = [asdict(leaf) for leaf in self.leaves]
        out["errors"] = [asdict(e) for e in self.errors]
        out["warnings"] = [asdict(w) for w in self.warnings]
        return out
