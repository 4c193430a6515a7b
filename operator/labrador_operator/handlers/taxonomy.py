"""Taxonomy handlers: thin. Load → decide (pure) → apply; the sampler (handlers/sampler.py) drives refreshInterval."""

from __future__ import annotations

import time
from typing import Any

import kopf

from labrador_operator.api.taxonomy import PLURAL, TaxonomySpec
from labrador_operator.builders.taxonomy import KIND, Owner
from labrador_operator.constants import API_GROUP, API_VERSION, LABEL_KIND
from labrador_operator.handlers import indexes
from labrador_operator.handlers.apply import forget, index_kwargs, reconcile
from labrador_operator.reconcile import taxonomy as decide
from labrador_operator.reconcile.observe import parent_key
from labrador_operator.settings import Settings

SETTINGS = Settings.from_env()


def reconcile_taxonomy(body: dict[str, Any], idx: dict[str, kopf.Index[Any, Any]]) -> None:
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]

    def plan(spec: TaxonomySpec, status: dict[str, Any]) -> Any:
        kids = indexes.children(
            (ns, KIND.lower(), name),
            idx["labrador_jobs"],
            idx["labrador_pods"],
            idx["labrador_configmaps"],
            idx["labrador_services"],
        )
        return decide.plan(
            owner=Owner(ns, name, meta["uid"]),
            spec=spec,
            generation=int(meta.get("generation", 1)),
            status=status,
            children=kids,
            now_epoch=time.time(),
            settings=SETTINGS,
        )

    reconcile(KIND, PLURAL, body, TaxonomySpec, plan)


@kopf.on.event(API_GROUP, API_VERSION, PLURAL)
def on_taxonomy(event: dict[str, Any], body: kopf.Body, **kw: Any) -> None:
    if event.get("type") == "DELETED":
        forget(PLURAL, body.metadata.namespace or "", body.metadata.name or "")
        return
    reconcile_taxonomy(dict(body), index_kwargs(kw))


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_KIND: "taxonomy"})
@kopf.on.event("", "v1", "pods", labels={LABEL_KIND: "taxonomy"})
def on_child(body: kopf.Body, **kw: Any) -> None:
    key = parent_key(dict(body))
    if key is not None and (parent := indexes.one(kw["taxonomies_by_name"], (key[0], key[2]))) is not None:
        reconcile_taxonomy(parent, index_kwargs(kw))


def refresh(obj: dict[str, Any], idx: dict[str, kopf.Index[Any, Any]]) -> None:
    """A new refresh window means a new sync Job; no writes when the window has not moved (called by the sampler
    for Taxonomies with a refreshInterval)."""
    reconcile_taxonomy(obj, idx)
