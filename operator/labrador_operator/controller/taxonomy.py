"""Taxonomy in the controller: load from the cache → decide (reconcile/taxonomy.py, pure) → apply; the sampler
(controller/sampler.py) drives refreshInterval."""

from __future__ import annotations

import contextvars
import time
from typing import TYPE_CHECKING, Any

from labrador_operator.api.taxonomy import PLURAL, TaxonomySpec
from labrador_operator.builders.taxonomy import KIND, Owner
from labrador_operator.controller.cache import Cache, Key
from labrador_operator.reconcile import taxonomy as decide

if TYPE_CHECKING:
    from labrador_operator.controller.runtime import Runtime


def pinned_snapshots(cache: Cache, namespace: str, name: str) -> tuple[str, ...]:
    """Snapshots of this Taxonomy that unfinished SyntheticDataJobs read (their status.taxonomySnapshot)."""
    out = []
    for sdg in cache.parents("syntheticdatajobs", namespace):
        st = sdg.get("status") or {}
        ref = ((sdg.get("spec") or {}).get("taxonomyRef") or {}).get("name")
        if ref == name and st.get("taxonomySnapshot") and st.get("phase") not in ("Succeeded", "Failed"):
            out.append(str(st["taxonomySnapshot"]))
    return tuple(out)


def reconcile_taxonomy(rt: Runtime, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]

    def plan(spec: TaxonomySpec, status: dict[str, Any]) -> Any:
        kids = rt.cache.children((ns, KIND.lower(), name), meta["uid"])
        return decide.plan(
            owner=Owner(ns, name, meta["uid"]),
            spec=spec,
            generation=int(meta.get("generation", 1)),
            status=status,
            children=kids,
            now_epoch=time.time(),
            settings=rt.settings,
            pinned=pinned_snapshots(rt.cache, ns, name),
        )

    rt.reconcile(KIND, PLURAL, body, TaxonomySpec, plan)


def on_child(rt: Runtime, key: Key, context: contextvars.Context | None = None) -> None:
    """A child Job or Pod changed (handlers/children.py): reconcile its parent."""
    if rt.cache.record(PLURAL, key[0], key[2]) is not None:
        rt.enqueue(PLURAL, key[0], key[2], context)


def refresh(rt: Runtime, obj: dict[str, Any]) -> None:
    """A new refresh window means a new sync Job; no writes when the window has not moved (called by the sampler
    for Taxonomies with a refreshInterval). Through the queue: one reconcile per object at a time, and in kopf's
    context (kopf.event() needs it; the sampler's thread has none)."""
    meta = obj["metadata"]
    rt.enqueue(PLURAL, meta["namespace"], meta["name"])
