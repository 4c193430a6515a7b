"""kopf indexes: children by parent, and parents by name, filled before any handler runs.

Reconciles read these instead of calling the API, so a reconcile costs no GETs.
"""

from __future__ import annotations

from typing import Any

import kopf

from labrador_operator.constants import API_GROUP, API_VERSION, LABEL_MANAGED_BY, MANAGED_BY
from labrador_operator.reconcile.observe import Children, JobState, PodState, job_state, parent_key, pod_state

OURS = {LABEL_MANAGED_BY: MANAGED_BY}
Key = tuple[str, str, str]


@kopf.index("batch", "v1", "jobs", labels=OURS)
async def labrador_jobs(body: kopf.Body, **_: Any) -> dict[Key, JobState] | None:
    key = parent_key(dict(body))
    return {key: job_state(dict(body))} if key else None


@kopf.index("", "v1", "pods", labels=OURS)
async def labrador_pods(body: kopf.Body, **_: Any) -> dict[Key, PodState] | None:
    key = parent_key(dict(body))
    return {key: pod_state(dict(body))} if key else None


@kopf.index("", "v1", "configmaps", labels=OURS)
async def labrador_configmaps(body: kopf.Body, name: str, **_: Any) -> dict[Key, str] | None:
    key = parent_key(dict(body))
    return {key: name} if key else None


@kopf.index("", "v1", "services", labels=OURS)
async def labrador_services(body: kopf.Body, name: str, **_: Any) -> dict[Key, str] | None:
    key = parent_key(dict(body))
    return {key: name} if key else None


#: metadata a reconcile and its Events need; not managedFields or kubectl's last-applied copy of the spec, which
#: would triple what the operator holds per object
SUMMARY_META = ("name", "namespace", "uid", "generation", "resourceVersion", "deletionTimestamp", "labels")


def _summary(body: kopf.Body) -> dict[str, Any]:
    meta = body.metadata
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {k: meta[k] for k in SUMMARY_META if k in meta},
        "spec": dict(body.spec),
        "status": dict(body.status),
    }


@kopf.index(API_GROUP, API_VERSION, "syntheticdatajobs")
async def syntheticdatajobs_by_name(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], Any]:
    return {(namespace, name): _summary(body)}


@kopf.index(API_GROUP, API_VERSION, "finetunejobs")
async def finetunejobs_by_name(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], Any]:
    return {(namespace, name): _summary(body)}


@kopf.index(API_GROUP, API_VERSION, "taxonomies")
async def taxonomies_by_name(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], Any]:
    return {(namespace, name): _summary(body)}


def one(index: kopf.Index[Any, Any], key: Any) -> Any | None:
    store = index.get(key)
    if not store:
        return None
    for value in store:
        return value
    return None


def children(
    key: Key,
    jobs: kopf.Index[Any, Any],
    pods: kopf.Index[Any, Any],
    config_maps: kopf.Index[Any, Any],
    services: kopf.Index[Any, Any],
) -> Children:
    c = Children()
    for j in jobs.get(key, []):
        c.jobs[j.name] = j
    for p in pods.get(key, []):
        c.pods[p.name] = p
    c.config_maps.update(config_maps.get(key, []))
    c.services.update(services.get(key, []))
    return c
