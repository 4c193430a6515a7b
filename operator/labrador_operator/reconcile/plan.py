"""The outcome of a reconcile: what to create, patch and report. The handler only carries it out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labrador_operator.reconcile.observe import now_iso


@dataclass
class Plan:
    create: list[dict[str, Any]] = field(default_factory=list)
    #: (kind, name, merge patch) for existing children, e.g. ("Job", "x", {"spec": {"suspend": True}})
    patch: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    #: (kind, name) of children no longer wanted (a removed spec.serve's Deployment and Service)
    delete: list[tuple[str, str]] = field(default_factory=list)
    #: fields of status this reconcile owns; compared with the current status before anything is written
    status: dict[str, Any] = field(default_factory=dict)
    #: (type, reason, message) Events, emitted only when the phase changes
    events: list[tuple[str, str, str]] = field(default_factory=list)


def condition(
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    generation: int | None,
    previous: list[dict[str, Any]] | None,
    now: str | None = None,
) -> dict[str, Any]:
    """A metav1.Condition; lastTransitionTime moves only when the status flips."""
    value = status if isinstance(status, str) else ("True" if status else "False")
    old = next((c for c in previous or [] if c.get("type") == type_), None)
    ltt = old["lastTransitionTime"] if old and old.get("status") == value else (now or now_iso())
    out = {"type": type_, "status": value, "reason": reason, "message": message, "lastTransitionTime": ltt}
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def status_diff(current: dict[str, Any] | None, desired: dict[str, Any]) -> dict[str, Any]:
    """The part of ``desired`` that differs from ``current`` (top-level keys; lists and objects whole)."""
    current = current or {}
    return {k: v for k, v in desired.items() if current.get(k) != v}


def human_duration(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{sec:02d}s"
    return f"{sec}s"
