"""Every use of kopf's private modules or of names kopf renamed, in one place, for the kopf range pyproject pins
(``kopf>=1.38,<1.46``). A kopf upgrade checks this module first; tests/unit/test_handlers.py fails when the installed
kopf leaves that range or a name here is gone."""

from __future__ import annotations

from typing import Any

import kopf
from kopf._core.reactor import inventory  # not re-exported by kopf; kopf.operator(memories=...) takes one


class TransientMemories(inventory.ResourceMemories):
    """kopf keeps a record per watched object for as long as the object exists (its memo, error throttler, daemon
    and index state: ~0.75 KiB; 30,000 records for 5,000 jobs with their children). Labrador uses none of it — no
    daemons, timers, indexes, memos or change-detecting handlers (tests/unit/test_handlers.py) — so each event gets
    a fresh record that goes with the event, as kopf already does for admission requests. `labrador-operator`
    passes this to kopf.operator()."""

    async def recall(
        self,
        raw_body: Any,
        *,
        memobase: Any = None,
        noticed_by_listing: bool = False,
        ephemeral: bool = False,
    ) -> inventory.ResourceMemory:
        return await super().recall(raw_body, memobase=memobase, noticed_by_listing=noticed_by_listing, ephemeral=True)


def queueing_settings(settings: kopf.OperatorSettings) -> Any:
    """kopf's per-object worker settings: ``settings.queueing`` (kopf ≥ 1.40), ``settings.batching`` before."""
    return getattr(settings, "queueing", None) or settings.batching


def notice_namespaces_listed_by_the_watch() -> None:
    """Mend a kopf race that loses a namespace created while the operator starts (namespace patterns like ``t-*``).

    kopf's namespace observer lists the namespaces once, then starts a watch that lists them again before it
    streams changes; that second listing arrives as events of type None, which kopf's processor drops as "already
    known". A namespace created between the two listings is in neither set: nothing in it is ever watched until a
    restart (seen as an integration fixture whose first Taxonomy in a fresh namespace never reconciled). Here the
    listed namespaces are revised like any other event: adding a matching namespace is idempotent, and a
    terminating one is judged by its conditions exactly as for a watch event. Idempotent itself."""
    from kopf._core.reactor import observation

    original = observation.process_discovered_namespace_event
    if getattr(original, "_labrador", False):
        return

    async def process_discovered_namespace_event(*, raw_event: Any, namespaces: Any, insights: Any, **_: Any) -> None:
        async with insights.revised:
            observation.revise_namespaces(raw_events=[raw_event], insights=insights, namespaces=namespaces)
            insights.revised.notify_all()

    process_discovered_namespace_event._labrador = True  # type: ignore[attr-defined]
    observation.process_discovered_namespace_event = process_discovered_namespace_event  # type: ignore[assignment]
