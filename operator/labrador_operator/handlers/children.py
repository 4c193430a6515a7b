"""Watch events of the operator's children: update the cache, then reconcile the parent a Job or Pod belongs to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kopf

from labrador_operator.cache import CACHE, Key
from labrador_operator.constants import LABEL_MANAGED_BY, MANAGED_BY
from labrador_operator.handlers import finetune, sdg, taxonomy

OURS = {LABEL_MANAGED_BY: MANAGED_BY}
#: parent kind (the children's labrador.dev/kind label) -> what reconciles it
PARENT: dict[str, Callable[[Key], None]] = {
    "finetunejob": finetune.on_child,
    "syntheticdatajob": sdg.on_child,
    "taxonomy": taxonomy.on_child,
}


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
