"""Every watch event the operator handles: update the cache, then reconcile what the event concerns — the object
itself, the parent a Job or Pod belongs to, the jobs waiting for a Taxonomy or a SyntheticDataJob."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kopf

from labrador_operator.cache import CACHE, Key
from labrador_operator.constants import API_GROUP, API_VERSION, LABEL_MANAGED_BY, MANAGED_BY
from labrador_operator.handlers import finetune, sdg, taxonomy
from labrador_operator.handlers.apply import forget, settled

OURS = {LABEL_MANAGED_BY: MANAGED_BY}
#: parent kind (the children's labrador.dev/kind label) -> what reconciles it
PARENT: dict[str, Callable[[Key], None]] = {
    "finetunejob": finetune.on_child,
    "syntheticdatajob": sdg.on_child,
    "taxonomy": taxonomy.on_child,
}


def _parent(plural: str, event: dict[str, Any], body: kopf.Body) -> dict[str, Any] | None:
    """Cache the object (forget it when deleted); returns what to reconcile, None once it is gone."""
    obj = dict(body)
    CACHE.observe_parent(plural, event.get("type"), obj)
    settled(plural, obj)
    if event.get("type") == "DELETED":
        forget(plural, body.metadata.namespace or "", body.metadata.name or "")
        return None
    return obj


@kopf.on.event(API_GROUP, API_VERSION, finetune.PLURAL)
def on_finetunejob(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    if (obj := _parent(finetune.PLURAL, event, body)) is not None:
        finetune.reconcile_finetunejob(obj)


@kopf.on.event(API_GROUP, API_VERSION, sdg.PLURAL)
def on_syntheticdatajob(event: dict[str, Any], body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    if (obj := _parent(sdg.PLURAL, event, body)) is not None:
        sdg.reconcile_sdg(obj)
    finetune.data_source_changed(namespace, name, (body.get("status") or {}).get("phase"))


@kopf.on.event(API_GROUP, API_VERSION, taxonomy.PLURAL)
def on_taxonomy(event: dict[str, Any], body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    if (obj := _parent(taxonomy.PLURAL, event, body)) is not None:
        taxonomy.reconcile_taxonomy(obj)
    sdg.taxonomy_changed(namespace, name)


@kopf.on.event("batch", "v1", "jobs", labels=OURS)
def on_job(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    key = CACHE.observe_child("Job", event.get("type"), dict(body))
    if key is not None and key[1] in PARENT:
        PARENT[key[1]](key)


@kopf.on.event("", "v1", "pods", labels=OURS)
def on_pod(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    key = CACHE.observe_child("Pod", event.get("type"), dict(body))
    if key is not None and key[1] in PARENT:
        PARENT[key[1]](key)


@kopf.on.event("", "v1", "configmaps", labels=OURS)
def on_config_map(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    CACHE.observe_child("ConfigMap", event.get("type"), dict(body))


@kopf.on.event("", "v1", "services", labels=OURS)
def on_service(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    CACHE.observe_child("Service", event.get("type"), dict(body))
