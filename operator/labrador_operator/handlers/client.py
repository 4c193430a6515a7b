"""The Kubernetes API calls the handlers make: create-or-get children, patch children and status, post Events.

The kubernetes client is synchronous; kopf runs sync handlers in its thread pool.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes
from kubernetes.client.rest import ApiException

from labrador_operator.cache import PAGE, Cache, pages, watched
from labrador_operator.constants import API_GROUP, API_VERSION

log = logging.getLogger("labrador.client")
_lock = threading.Lock()
_api: kubernetes.client.ApiClient | None = None

#: children created in this process recently: the watch may not have delivered them to the cache yet
_recent: dict[tuple[str, str, str], float] = {}
RECENT_SECONDS = 30.0
_prune_at = 10_000  # pruned when it grows past this; then twice what is left (never a scan per create)


def api() -> kubernetes.client.ApiClient:
    global _api
    with _lock:
        if _api is None:
            try:
                kubernetes.config.load_incluster_config()
            except kubernetes.config.ConfigException:
                kubernetes.config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
            cfg = kubernetes.client.Configuration.get_default_copy()
            cfg.connection_pool_maxsize = int(os.environ.get("LABRADOR_MAX_WORKERS", "64")) + 16  # + the sampler
            _api = kubernetes.client.ApiClient(cfg)
        return _api


def recently_created(kind: str, namespace: str, name: str) -> bool:
    t = _recent.get((kind, namespace, name))
    return t is not None and time.monotonic() - t < RECENT_SECONDS


def _done(response: Any) -> None:
    """Writes ask for the raw response (``_preload_content=False``): the operator never reads what the API server
    echoes back, and turning it into client models (a whole V1Job per create) costs CPU and heap churn per write."""
    response.read()
    response.release_conn()


def create(manifest: dict[str, Any]) -> bool:
    """Create a child; True when created, False when it already existed (409). Other errors propagate."""
    kind, meta = manifest["kind"], manifest["metadata"]
    ns, name = meta["namespace"], meta["name"]
    try:
        if kind == "Job":
            _done(kubernetes.client.BatchV1Api(api()).create_namespaced_job(ns, manifest, _preload_content=False))
        elif kind == "ConfigMap":
            _done(kubernetes.client.CoreV1Api(api()).create_namespaced_config_map(ns, manifest, _preload_content=False))
        elif kind == "Service":
            _done(kubernetes.client.CoreV1Api(api()).create_namespaced_service(ns, manifest, _preload_content=False))
        else:
            raise ValueError(f"unsupported child kind {kind}")
    except ApiException as e:
        if e.status == 409:
            _recent[(kind, ns, name)] = time.monotonic()
            return False
        if (e.status == 403 and "NamespaceTerminating" in (e.body or "")) or e.status == 404:
            log.debug("not creating %s %s/%s: the namespace is gone or being deleted", kind, ns, name)
            return False
        raise
    global _prune_at
    _recent[(kind, ns, name)] = time.monotonic()
    if len(_recent) > _prune_at:
        cutoff = time.monotonic() - RECENT_SECONDS
        for key in [k for k, t in list(_recent.items()) if t < cutoff]:
            _recent.pop(key, None)
        _prune_at = max(10_000, 2 * len(_recent))
    return True


def patch_child(kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
    if kind != "Job":
        raise ValueError(f"unsupported child kind {kind}")
    try:
        _done(kubernetes.client.BatchV1Api(api()).patch_namespaced_job(name, namespace, patch, _preload_content=False))
    except ApiException as e:
        if e.status != 404:
            raise


def patch_status(plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
    try:
        _done(
            kubernetes.client.CustomObjectsApi(api()).patch_namespaced_custom_object_status(
                API_GROUP, API_VERSION, namespace, plural, name, {"status": status}, _preload_content=False
            )
        )
    except ApiException as e:
        if e.status != 404:  # deleted meanwhile
            raise


def get_object(group: str, version: str, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
    """A custom object of any group, cluster-scoped when ``namespace`` is None; None when it does not exist."""
    custom = kubernetes.client.CustomObjectsApi(api())
    try:
        if namespace is None:
            return custom.get_cluster_custom_object(group, version, plural, name)
        return custom.get_namespaced_custom_object(group, version, namespace, plural, name)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def failed_create(namespace: str, job_uid: str, since: float) -> str | None:
    """The newest message of the Job controller's ``FailedCreate`` Events for one Job seen after ``since`` (epoch
    seconds): why the API server refused the Job's pods (quota, LimitRange, Pod Security admission). Kubernetes says
    it nowhere else — the Job's status only shows no pods. Read from the API server's watch cache
    (resourceVersion=0), filtered there; None when there is none."""
    events = kubernetes.client.CoreV1Api(api()).list_namespaced_event(
        namespace,
        field_selector=f"involvedObject.uid={job_uid},reason=FailedCreate",
        resource_version="0",
        _request_timeout=30,
    )
    newest: tuple[float, str] | None = None
    for e in events.items:
        when = e.last_timestamp or e.event_time or (e.series.last_observed_time if e.series else None)
        when = when or e.first_timestamp or e.metadata.creation_timestamp
        t = when.timestamp() if when is not None else 0.0
        if t >= since and (newest is None or t > newest[0]):
            newest = (t, str(e.message or "the API server refused the Job's pods"))
    return newest[1] if newest else None


#: where each kind the cache loads is listed: (API group/version, plural)
LISTS = {
    "finetunejobs": (f"{API_GROUP}/{API_VERSION}", "finetunejobs"),
    "syntheticdatajobs": (f"{API_GROUP}/{API_VERSION}", "syntheticdatajobs"),
    "taxonomies": (f"{API_GROUP}/{API_VERSION}", "taxonomies"),
    "Job": ("batch/v1", "jobs"),
    "Pod": ("v1", "pods"),
    "ConfigMap": ("v1", "configmaps"),
    "Service": ("v1", "services"),
}


def list_objects(what: str, label_selector: str, namespaces: tuple[str, ...] = (), page: int = PAGE) -> Iterator[Any]:
    """Every object of one kind in the watched namespaces (cluster-wide when none are given, else per namespace:
    globs and ``!`` excludes matched against the cluster's namespaces, as kopf does), one page at a time, as raw JSON:
    no client models, one page decoded at a time."""
    group_version, plural = LISTS[what]
    root = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    c = api()

    def fetcher(path: str, selector: str = label_selector) -> Callable[[str | None], bytes]:
        def fetch(token: str | None) -> bytes:
            query: list[tuple[str, Any]] = [("limit", page)]
            if selector:
                query.append(("labelSelector", selector))
            if token:
                query.append(("continue", token))
            request = c.param_serialize(
                "GET", path, query_params=query, header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )  # fmt: skip
            response = c.call_api(*request, _request_timeout=60)
            data = response.read()
            if not 200 <= response.status <= 299:
                raise ApiException(status=response.status, reason=f"GET {path}: {data[:300]!r}")
            return data

        return fetch

    if not namespaces:
        yield from pages(fetcher(f"{root}/{plural}"))
        return
    # per namespace (a namespaced operator may not list cluster-wide); globs matched against the namespaces — all
    # of them: the children's label selector is not the namespaces' (with it, no namespace and so no child was found)
    if any(ch in ns for ns in namespaces for ch in "*?[!"):
        found = [(item.get("metadata") or {}).get("name", "") for item in pages(fetcher("/api/v1/namespaces", ""))]
        names = [ns for ns in found if watched(ns, namespaces)]
    else:
        names = list(namespaces)
    for ns in names:
        yield from pages(fetcher(f"{root}/namespaces/{ns}/{plural}"))


def load_cache(cache: Cache, namespaces: tuple[str, ...], *, prune_only: bool = False) -> int:
    """Fill ``cache`` with one LIST per kind of the watched namespaces (see :meth:`Cache.load`)."""
    return cache.load(
        lambda what, selector: list_objects(what, selector, namespaces), namespaces, prune_only=prune_only
    )


def resync_cache(cache: Cache, namespaces: tuple[str, ...]) -> set[Any]:
    """Compare ``cache`` with one LIST per kind and drop what the watches missed the deletion of (Cache.resync)."""
    return cache.resync(lambda what, selector: list_objects(what, selector, namespaces), namespaces)


def ensure_peering(name: str, namespaces: list[str]) -> list[str]:
    """Create the kopf peering object(s) replicas coordinate through, if missing: one ClusterKopfPeering when the
    operator watches the whole cluster, else a KopfPeering in each named namespace (globs are the user's to create).
    Returns what was created."""
    custom = kubernetes.client.CustomObjectsApi(api())
    created = []
    targets = [ns for ns in namespaces if not any(c in ns for c in "*?[!")] if namespaces else [None]
    for ns in targets:
        body = {"apiVersion": "kopf.dev/v1", "metadata": {"name": name}}
        try:
            if ns is None:
                custom.create_cluster_custom_object(
                    "kopf.dev", "v1", "clusterkopfpeerings", body | {"kind": "ClusterKopfPeering"}
                )
            else:
                custom.create_namespaced_custom_object(
                    "kopf.dev", "v1", ns, "kopfpeerings", body | {"kind": "KopfPeering"}
                )
            created.append(f"{ns}/{name}" if ns else name)
        except ApiException as e:
            if e.status != 409:
                raise
    return created
