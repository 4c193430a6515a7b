"""Every watch event the operator handles: update the cache, then name what the event concerns for a reconcile
(handlers/apply.py's queue) — the object itself, the parent a Job or Pod belongs to, the jobs waiting for a Taxonomy
or a SyntheticDataJob. The handlers are async and never block: kopf frees each event's body as soon as it returns,
and the reconciles (API writes) run in the queue's threads, reading the cache."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

import kopf

from labrador_operator.cache import CACHE, Key
from labrador_operator.constants import API_GROUP, API_VERSION, LABEL_MANAGED_BY, MANAGED_BY
from labrador_operator.handlers import finetune, sdg, taxonomy
from labrador_operator.handlers.apply import enqueue, forget, settled

OURS = {LABEL_MANAGED_BY: MANAGED_BY}
#: parent kind (the children's labrador.dev/kind label) -> what a change of its Job or Pod triggers
PARENT: dict[str, Callable[[Key, contextvars.Context], None]] = {
    "finetunejob": finetune.on_child,
    "syntheticdatajob": sdg.on_child,
    "taxonomy": taxonomy.on_child,
}


def _parent(plural: str, event: dict[str, Any], body: kopf.Body) -> contextvars.Context:
    """Cache the object (forget it when deleted) and name it for a reconcile unless it is gone."""
    obj = dict(body)
    CACHE.observe_parent(plural, event.get("type"), obj)
    settled(plural, obj)
    namespace, name = body.metadata.namespace or "", body.metadata.name or ""
    context = contextvars.copy_context()  # kopf's variables: kopf.event() from the reconcile's thread
    if event.get("type") == "DELETED":
        forget(plural, namespace, name)
    else:
        enqueue(plural, namespace, name, context)
    return context


@kopf.on.event(API_GROUP, API_VERSION, finetune.PLURAL)
async def on_finetunejob(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    _parent(finetune.PLURAL, event, body)


@kopf.on.event(API_GROUP, API_VERSION, sdg.PLURAL)
async def on_syntheticdatajob(event: dict[str, Any], body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    context = _parent(sdg.PLURAL, event, body)
    finetune.data_source_changed(namespace, name, (body.get("status") or {}).get("phase"), context)


@kopf.on.event(API_GROUP, API_VERSION, taxonomy.PLURAL)
async def on_taxonomy(event: dict[str, Any], body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    context = _parent(taxonomy.PLURAL, event, body)
    sdg.taxonomy_changed(namespace, name, context)


def _child(kind: str, event: dict[str, Any], body: kopf.Body) -> None:
    key = CACHE.observe_child(kind, event.get("type"), dict(body))
    if key is not None and key[1] in PARENT:
        PARENT[key[1]](key, contextvars.copy_context())


@kopf.on.event("batch", "v1", "jobs", labels=OURS)
async def on_job(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    _child("Job", event, body)


@kopf.on.event("", "v1", "pods", labels=OURS)
async def on_pod(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    _child("Pod", event, body)


@kopf.on.event("", "v1", "configmaps", labels=OURS)
async def on_config_map(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    CACHE.observe_child("ConfigMap", event.get("type"), dict(body))


@kopf.on.event("", "v1", "services", labels=OURS)
async def on_service(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    CACHE.observe_child("Service", event.get("type"), dict(body))
