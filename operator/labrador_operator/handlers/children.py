"""Watch events of the children (Jobs, Pods, ConfigMaps, Services, Deployments labelled as Labrador's; KServe
InferenceServices too when the operator manages them): update the cache, then name the parent a Job or Pod belongs to
for a reconcile; a serving child (Deployment or InferenceService, its Service and pods) names its FineTuneJob even
after the job succeeded. Also the shared step of the parent kinds' watch handlers.

async: kopf frees each event's body as soon as the handler returns; the cache is updated and the work named at
once, and the reconciles (API writes) run in the runtime's work queue threads."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

import kopf

from labrador_operator.constants import LABEL_MANAGED_BY, LABEL_PHASE, MANAGED_BY
from labrador_operator.controller import finetune, sdg, taxonomy
from labrador_operator.controller.cache import Key
from labrador_operator.controller.runtime import Runtime
from labrador_operator.reconcile.observe import SERVE_ROLES

OURS = {LABEL_MANAGED_BY: MANAGED_BY}
#: parent kind (the children's labrador.dev/kind label) -> what a change of its Job or Pod triggers
PARENT: dict[str, Callable[[Runtime, Key, contextvars.Context], None]] = {
    "finetunejob": finetune.on_child,
    "syntheticdatajob": sdg.on_child,
    "taxonomy": taxonomy.on_child,
}


def observe_parent(rt: Runtime, plural: str, event: dict[str, Any], body: kopf.Body) -> contextvars.Context:
    """Cache the object (forget it when deleted) and name it for a reconcile unless it is gone."""
    obj = dict(body)
    rt.cache.observe_parent(plural, event.get("type"), obj)
    rt.overlay.settled(plural, obj)
    namespace, name = body.metadata.namespace or "", body.metadata.name or ""
    context = contextvars.copy_context()  # kopf's variables: kopf.event() from the reconcile's thread
    if event.get("type") == "DELETED":
        rt.overlay.forget(plural, namespace, name)
    else:
        rt.enqueue(plural, namespace, name, context)
    return context


def _serving(body: kopf.Body) -> bool:
    return (body.metadata.labels or {}).get(LABEL_PHASE) in SERVE_ROLES


def _child(rt: Runtime, kind: str, event: dict[str, Any], body: kopf.Body) -> None:
    key = rt.cache.observe_child(kind, event.get("type"), dict(body))
    if key is None:
        return
    if key[1] == "finetunejob" and _serving(body):
        finetune.on_serving_child(rt, key, contextvars.copy_context())
    elif key[1] in PARENT and kind in ("Job", "Pod"):
        PARENT[key[1]](rt, key, contextvars.copy_context())


def register(registry: kopf.OperatorRegistry, rt: Runtime) -> None:
    @kopf.on.event("batch", "v1", "jobs", labels=OURS, id="on_job", registry=registry)
    async def on_job(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
        _child(rt, "Job", event, body)

    @kopf.on.event("", "v1", "pods", labels=OURS, id="on_pod", registry=registry)
    async def on_pod(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
        _child(rt, "Pod", event, body)

    @kopf.on.event("", "v1", "configmaps", labels=OURS, id="on_config_map", registry=registry)
    async def on_config_map(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
        rt.cache.observe_child("ConfigMap", event.get("type"), dict(body))

    @kopf.on.event("", "v1", "services", labels=OURS, id="on_service", registry=registry)
    async def on_service(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
        _child(rt, "Service", event, body)

    @kopf.on.event("apps", "v1", "deployments", labels=OURS, id="on_deployment", registry=registry)
    async def on_deployment(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
        _child(rt, "Deployment", event, body)

    if rt.settings.kserve:  # only where KServe is installed: the chart's kserve.enabled grants the RBAC

        @kopf.on.event("serving.kserve.io", "v1beta1", "inferenceservices", labels=OURS, id="on_inference_service",
                       registry=registry)  # fmt: skip
        async def on_inference_service(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
            _child(rt, "InferenceService", event, body)
