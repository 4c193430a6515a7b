"""Taxonomy handlers: thin. Load → decide (pure) → apply; the sampler (handlers/sampler.py) drives refreshInterval."""

from __future__ import annotations

import contextvars
import time
from typing import Any

from labrador_operator.api.taxonomy import PLURAL, TaxonomySpec
from labrador_operator.builders.taxonomy import KIND, Owner
from labrador_operator.cache import CACHE, Key
from labrador_operator.handlers.apply import RECONCILERS, enqueue, reconcile
from labrador_operator.reconcile import taxonomy as decide
from labrador_operator.settings import Settings

SETTINGS = Settings.from_env()


def pinned_snapshots(namespace: str, name: str) -> tuple[str, ...]:
    """Snapshots of this Taxonomy that unfinished SyntheticDataJobs read (their status.taxonomySnapshot)."""
    out = []
    for sdg in CACHE.parents("syntheticdatajobs", namespace):
        st = sdg.get("status") or {}
        ref = ((sdg.get("spec") or {}).get("taxonomyRef") or {}).get("name")
        if ref == name and st.get("taxonomySnapshot") and st.get("phase") not in ("Succeeded", "Failed"):
            out.append(str(st["taxonomySnapshot"]))
    return tuple(out)


def reconcile_taxonomy(body: dict[str, Any]) -> None:
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]

    def plan(spec: TaxonomySpec, status: dict[str, Any]) -> Any:
        kids = CACHE.children((ns, KIND.lower(), name), meta["uid"])
        return decide.plan(
            owner=Owner(ns, name, meta["uid"]),
            spec=spec,
            generation=int(meta.get("generation", 1)),
            status=status,
            children=kids,
            now_epoch=time.time(),
            settings=SETTINGS,
            pinned=pinned_snapshots(ns, name),
        )

    reconcile(KIND, PLURAL, body, TaxonomySpec, plan)


RECONCILERS[PLURAL] = reconcile_taxonomy


def on_child(key: Key, context: contextvars.Context | None = None) -> None:
    """A child Job or Pod changed (handlers/events.py): reconcile its parent."""
    if CACHE.record(PLURAL, key[0], key[2]) is not None:
        enqueue(PLURAL, key[0], key[2], context)


def refresh(obj: dict[str, Any]) -> None:
    """A new refresh window means a new sync Job; no writes when the window has not moved (called by the sampler
    for Taxonomies with a refreshInterval). Through the queue: one reconcile per object at a time, and in kopf's
    context (kopf.event() needs it; the sampler's thread has none)."""
    meta = obj["metadata"]
    enqueue(PLURAL, meta["namespace"], meta["name"])
