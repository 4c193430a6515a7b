"""The Kubernetes API calls the operator makes: create-or-get children, patch children and status, read Events and
peering objects, LIST pages for the cache.

The kubernetes client is synchronous; the work queue's threads and the sampler call it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes
from kubernetes.client.rest import ApiException

from labrador_operator.constants import API_GROUP, API_VERSION
from labrador_operator.controller.cache import PAGE, Cache, pages, watched

log = logging.getLogger("labrador.client")

#: a create answered 409 or made in this process counts as existing for this long: the watch may not have delivered
#: the child to the cache yet
RECENT_SECONDS = 30.0

#: where each kind the cache loads is listed: (API group/version, plural)
LISTS = {
    "finetunejobs": (f"{API_GROUP}/{API_VERSION}", "finetunejobs"),
    "syntheticdatajobs": (f"{API_GROUP}/{API_VERSION}", "syntheticdatajobs"),
    "taxonomies": (f"{API_GROUP}/{API_VERSION}", "taxonomies"),
    "Job": ("batch/v1", "jobs"),
    "Pod": ("v1", "pods"),
    "ConfigMap": ("v1", "configmaps"),
    "Service": ("v1", "services"),
    "Deployment": ("apps/v1", "deployments"),
    "InferenceService": ("serving.kserve.io/v1beta1", "inferenceservices"),
}
#: KServe's API: its InferenceServices are children only where it is installed (a LIST of them may find no API)
KSERVE_GROUP, KSERVE_VERSION, KSERVE_PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"


def _done(response: Any) -> None:
    """Writes ask for the raw response (``_preload_content=False``): the operator never reads what the API server
    echoes back, and turning it into client models (a whole V1Job per create) costs CPU and heap churn per write."""
    response.read()
    response.release_conn()


class Client:
    """One API connection pool (in-cluster service account, else the kubeconfig file, loaded at the first call)
    sized for ``workers`` concurrent reconciles plus the sampler; or the ``api_client`` given."""

    def __init__(
        self, workers: int = 64, kubeconfig: str | None = None, api_client: kubernetes.client.ApiClient | None = None
    ) -> None:
        self.workers, self.kubeconfig = workers, kubeconfig
        self._lock = threading.Lock()
        self._api: kubernetes.client.ApiClient | None = api_client
        #: children created (or found existing) by this process recently
        self._recent: dict[tuple[str, str, str], float] = {}
        self._prune_at = 10_000  # pruned when it grows past this; then twice what is left (never a scan per create)

    def api(self) -> kubernetes.client.ApiClient:
        with self._lock:
            if self._api is None:
                try:
                    kubernetes.config.load_incluster_config()
                except kubernetes.config.ConfigException:
                    kubernetes.config.load_kube_config(config_file=self.kubeconfig)
                cfg = kubernetes.client.Configuration.get_default_copy()
                cfg.connection_pool_maxsize = self.workers + 16  # + the sampler
                self._api = kubernetes.client.ApiClient(cfg)
            return self._api

    def recently_created(self, kind: str, namespace: str, name: str) -> bool:
        t = self._recent.get((kind, namespace, name))
        return t is not None and time.monotonic() - t < RECENT_SECONDS

    def _remember(self, kind: str, namespace: str, name: str) -> None:
        self._recent[(kind, namespace, name)] = time.monotonic()
        if len(self._recent) > self._prune_at:
            cutoff = time.monotonic() - RECENT_SECONDS
            for key in [k for k, t in list(self._recent.items()) if t < cutoff]:
                self._recent.pop(key, None)
            self._prune_at = max(10_000, 2 * len(self._recent))

    def create(self, manifest: dict[str, Any]) -> bool:
        """Create a child; True when created, False when it already existed (409) or its namespace is gone or
        terminating. Other errors propagate (the work queue retries them and, after a few, says so on the
        resource)."""
        kind, meta = manifest["kind"], manifest["metadata"]
        ns, name = meta["namespace"], meta["name"]
        api = self.api()
        try:
            if kind == "Job":
                _done(kubernetes.client.BatchV1Api(api).create_namespaced_job(ns, manifest, _preload_content=False))
            elif kind == "ConfigMap":
                core = kubernetes.client.CoreV1Api(api)
                _done(core.create_namespaced_config_map(ns, manifest, _preload_content=False))
            elif kind == "Service":
                _done(kubernetes.client.CoreV1Api(api).create_namespaced_service(ns, manifest, _preload_content=False))
            elif kind == "Deployment":
                apps = kubernetes.client.AppsV1Api(api)
                _done(apps.create_namespaced_deployment(ns, manifest, _preload_content=False))
            elif kind == "InferenceService":
                custom = kubernetes.client.CustomObjectsApi(api)
                _done(custom.create_namespaced_custom_object(KSERVE_GROUP, KSERVE_VERSION, ns, KSERVE_PLURAL, manifest,
                                                             _preload_content=False))  # fmt: skip
            else:
                raise ValueError(f"unsupported child kind {kind}")
        except ApiException as e:
            if e.status == 409:
                self._remember(kind, ns, name)
                return False
            if (e.status == 403 and "NamespaceTerminating" in (e.body or "")) or e.status == 404:
                log.debug("not creating %s %s/%s: the namespace is gone or being deleted", kind, ns, name)
                return False
            raise
        self._remember(kind, ns, name)
        return True

    def patch_child(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """Merge-patch a child Job or Deployment; an InferenceService's spec is replaced whole (a JSON patch: a merge
        patch would keep fields the new spec no longer has) with its annotations merged. One deleted meanwhile (404)
        is no error."""
        try:
            if kind == "Job":
                batch = kubernetes.client.BatchV1Api(self.api())
                _done(batch.patch_namespaced_job(name, namespace, patch, _preload_content=False))
            elif kind == "Deployment":
                apps = kubernetes.client.AppsV1Api(self.api())
                _done(apps.patch_namespaced_deployment(name, namespace, patch, _preload_content=False))
            elif kind == "InferenceService":
                annotations = (patch.get("metadata") or {}).get("annotations") or {}
                pointer = "/metadata/annotations/"
                ops: list[dict[str, Any]] = [
                    {"op": "add", "path": pointer + k.replace("~", "~0").replace("/", "~1"), "value": v}
                    for k, v in annotations.items()
                ]
                if "spec" in patch:
                    ops.append({"op": "replace", "path": "/spec", "value": patch["spec"]})
                custom = kubernetes.client.CustomObjectsApi(self.api())
                _done(custom.patch_namespaced_custom_object(KSERVE_GROUP, KSERVE_VERSION, namespace, KSERVE_PLURAL,
                                                            name, ops, _content_type="application/json-patch+json",
                                                            _preload_content=False))  # fmt: skip
            else:
                raise ValueError(f"unsupported child kind {kind}")
        except ApiException as e:
            if e.status != 404:
                raise

    def delete_child(self, kind: str, namespace: str, name: str) -> None:
        """Delete a child Deployment, Service or InferenceService (its dependants in the background); one already gone
        is no error."""
        body = kubernetes.client.V1DeleteOptions(propagation_policy="Background")
        try:
            if kind == "Deployment":
                apps = kubernetes.client.AppsV1Api(self.api())
                _done(apps.delete_namespaced_deployment(name, namespace, body=body, _preload_content=False))
            elif kind == "Service":
                core = kubernetes.client.CoreV1Api(self.api())
                _done(core.delete_namespaced_service(name, namespace, body=body, _preload_content=False))
            elif kind == "InferenceService":
                custom = kubernetes.client.CustomObjectsApi(self.api())
                _done(custom.delete_namespaced_custom_object(KSERVE_GROUP, KSERVE_VERSION, namespace, KSERVE_PLURAL,
                                                             name, body=body, _preload_content=False))  # fmt: skip
            else:
                raise ValueError(f"unsupported child kind {kind}")
        except ApiException as e:
            if e.status != 404:
                raise
        self._recent.pop((kind, namespace, name), None)

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch a Labrador resource's status; one deleted meanwhile (404) is no error."""
        custom = kubernetes.client.CustomObjectsApi(self.api())
        try:
            _done(
                custom.patch_namespaced_custom_object_status(
                    API_GROUP, API_VERSION, namespace, plural, name, {"status": status}, _preload_content=False
                )
            )
        except ApiException as e:
            if e.status != 404:
                raise

    def kserve_installed(self) -> bool:
        """Whether the API server serves KServe's InferenceServices (its discovery document for serving.kserve.io/
        v1beta1 lists them); no object is read."""
        c = self.api()
        path = f"/apis/{KSERVE_GROUP}/{KSERVE_VERSION}"
        request = c.param_serialize("GET", path, header_params={"Accept": "application/json"},
                                    auth_settings=["BearerToken"])  # fmt: skip
        response = c.call_api(*request, _request_timeout=30)
        data = response.read()
        if response.status == 404:
            return False
        if not 200 <= response.status <= 299:
            raise ApiException(status=response.status, reason=f"GET {path}: {data[:300]!r}")
        resources = json.loads(data).get("resources") or []
        return any(r.get("name") == KSERVE_PLURAL for r in resources)

    def get_object(
        self, group: str, version: str, plural: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """A custom object of any group, cluster-scoped when ``namespace`` is None; None when it does not exist."""
        custom = kubernetes.client.CustomObjectsApi(self.api())
        try:
            if namespace is None:
                return custom.get_cluster_custom_object(group, version, plural, name)
            return custom.get_namespaced_custom_object(group, version, namespace, plural, name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def failed_create(self, namespace: str, job_uid: str, since: float) -> str | None:
        """The newest message of the Job controller's ``FailedCreate`` Events for one Job seen after ``since``
        (epoch seconds): why the API server refused the Job's pods (quota, LimitRange, Pod Security admission).
        Kubernetes says it nowhere else — the Job's status only shows no pods. Read from the API server's watch
        cache (resourceVersion=0), filtered there; None when there is none."""
        events = kubernetes.client.CoreV1Api(self.api()).list_namespaced_event(
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

    def list_objects(
        self, what: str, label_selector: str, namespaces: tuple[str, ...] = (), page: int = PAGE
    ) -> Iterator[Any]:
        """Every object of one kind in the watched namespaces (cluster-wide when none are given, else per
        namespace: globs and ``!`` excludes matched against the cluster's namespaces, as kopf does), one page at a
        time, as raw JSON: no client models, one page decoded at a time."""
        group_version, plural = LISTS[what]
        root = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        c = self.api()

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
                if response.status == 404 and what == "InferenceService":
                    return b"{}"  # KServe is not installed (yet): no InferenceServices to load
                if not 200 <= response.status <= 299:
                    raise ApiException(status=response.status, reason=f"GET {path}: {data[:300]!r}")
                return data

            return fetch

        if not namespaces:
            yield from pages(fetcher(f"{root}/{plural}"))
            return
        # per namespace (a namespaced operator may not list cluster-wide); globs matched against the namespaces —
        # all of them: the children's label selector is not the namespaces' (with it, no namespace and so no child
        # was found)
        if any(ch in ns for ns in namespaces for ch in "*?[!"):
            found = [(i.get("metadata") or {}).get("name", "") for i in pages(fetcher("/api/v1/namespaces", ""))]
            names = [ns for ns in found if watched(ns, namespaces)]
        else:
            names = list(namespaces)
        for ns in names:
            yield from pages(fetcher(f"{root}/namespaces/{ns}/{plural}"))

    def load_cache(self, cache: Cache, namespaces: tuple[str, ...], *, prune_only: bool = False) -> int:
        """Fill ``cache`` with one LIST per kind of the watched namespaces (see :meth:`Cache.load`)."""
        return cache.load(
            lambda what, selector: self.list_objects(what, selector, namespaces), namespaces, prune_only=prune_only
        )

    def resync_cache(self, cache: Cache, namespaces: tuple[str, ...]) -> set[Any]:
        """Compare ``cache`` with one LIST per kind and drop what the watches missed the deletion of
        (Cache.resync)."""
        return cache.resync(lambda what, selector: self.list_objects(what, selector, namespaces), namespaces)

    def ensure_peering(self, name: str, namespaces: tuple[str, ...]) -> list[str]:
        """Create the kopf peering object(s) replicas coordinate through, if missing: one ClusterKopfPeering when
        the operator watches the whole cluster, else a KopfPeering in each named namespace (globs are the user's to
        create). Returns what was created."""
        custom = kubernetes.client.CustomObjectsApi(self.api())
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
