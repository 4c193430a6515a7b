"""The operator's cache: records from watch events, one LIST at startup, pruning on a standby's takeover."""

from __future__ import annotations

import json
from typing import Any

from labrador_operator.constants import ANNOTATION_OWNER, LABEL_KIND, LABEL_MANAGED_BY, MANAGED_BY
from labrador_operator.controller.cache import MANAGED, Cache, pages, watched


def parent(name: str, ns: str = "a", phase: str | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name, "namespace": ns, "uid": f"uid-{name}", "generation": 2,
            "managedFields": [{"manager": "kubectl"}] * 50,
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}" * 100},
        },
        "spec": {"model": {"uri": "hf://m"}},
        "status": {"phase": phase} if phase else {},
    }  # fmt: skip


def child(kind: str, name: str, owner: str, ns: str = "a", parent_kind: str = "finetunejob") -> dict[str, Any]:
    meta = {
        "name": name,
        "namespace": ns,
        "labels": {LABEL_KIND: parent_kind, LABEL_MANAGED_BY: MANAGED_BY, "batch.kubernetes.io/job-name": "j"},
        "annotations": {ANNOTATION_OWNER: owner},
    }
    body: dict[str, Any] = {"metadata": meta, "spec": {}, "status": {}}
    if kind == "Job":
        body["spec"] = {"completions": 2}
        body["status"] = {"active": 1}
    return body


def test_parents_keep_only_what_a_reconcile_needs() -> None:
    c = Cache()
    c.observe_parent("finetunejobs", None, parent("x", phase="Running"))
    got = c.parent("finetunejobs", "a", "x")
    assert got is not None
    assert got["kind"] == "FineTuneJob" and got["apiVersion"] == "labrador.dev/v1alpha1"  # LIST items carry neither
    assert set(got["metadata"]) == {"name", "namespace", "uid", "generation"}
    assert got["status"] == {"phase": "Running"} and got["spec"]["model"]["uri"] == "hf://m"
    c.observe_parent("finetunejobs", "DELETED", parent("x"))
    assert c.parent("finetunejobs", "a", "x") is None


def test_parents_are_held_compact_and_filtered_by_phase_without_decoding() -> None:
    c = Cache()
    c.observe_parent("finetunejobs", None, parent("run", phase="Running"))
    c.observe_parent("finetunejobs", None, parent("new"))
    c.observe_parent("finetunejobs", None, parent("other-ns", "b", phase="Running"))
    record = c.record("finetunejobs", "a", "run")
    assert record is not None and record.phase == "Running" and isinstance(record.blob, str)
    assert c.record("finetunejobs", "a", "nope") is None
    assert [p["metadata"]["name"] for p in c.parents("finetunejobs", phases=("Running",))] == ["run", "other-ns"]
    assert [p["metadata"]["name"] for p in c.parents("finetunejobs", "a", phases=(None,))] == ["new"]
    got = c.parent("finetunejobs", "a", "run")
    assert got is not None
    got["status"]["phase"] = "changed by a caller"
    assert c.parent("finetunejobs", "a", "run")["status"]["phase"] == "Running"  # type: ignore[index]


def test_children_are_grouped_by_parent_and_forgotten_when_deleted() -> None:
    c = Cache()
    assert c.observe_child("Job", "ADDED", child("Job", "x-only", "x")) == ("a", "finetunejob", "x")
    c.observe_child("Pod", None, child("Pod", "x-only-0", "x"))
    c.observe_child("ConfigMap", None, child("ConfigMap", "x-config", "x"))
    c.observe_child("Service", None, child("Service", "x-only", "x"))
    c.observe_child("Job", None, child("Job", "y-only", "y"))
    kids = c.children(("a", "finetunejob", "x"))
    assert set(kids.jobs) == {"x-only"} and kids.jobs["x-only"].completions == 2
    assert set(kids.pods) == {"x-only-0"} and kids.config_maps == {"x-config"} and kids.services == {"x-only"}
    for kind, name in (("Job", "x-only"), ("Pod", "x-only-0"), ("ConfigMap", "x-config"), ("Service", "x-only")):
        c.observe_child(kind, "DELETED", child(kind, name, "x"))
    assert c.children(("a", "finetunejob", "x")) == c.children(("a", "finetunejob", "nobody"))
    assert c.sizes() == {"finetunejobs": 0, "syntheticdatajobs": 0, "taxonomies": 0, "jobs": 1, "pods": 0,
                         "configmaps": 0, "services": 0, "deployments": 0}  # fmt: skip
    assert c.observe_child("Job", None, {"metadata": {"name": "foreign", "labels": {}}}) is None


def _lister(objects: dict[str, list[dict[str, Any]]], calls: list[tuple[str, str]]) -> Any:
    def lister(what: str, selector: str) -> list[dict[str, Any]]:
        calls.append((what, selector))
        return objects.get(what, [])

    return lister


def test_load_lists_each_kind_once_and_filters_namespaces() -> None:
    objects = {
        "finetunejobs": [parent("x", "team-a"), parent("z", "other")],
        "Job": [child("Job", "x-only", "x", "team-a"), child("Job", "z-only", "z", "other")],
    }
    calls: list[tuple[str, str]] = []
    c = Cache()
    c.observe_parent("finetunejobs", None, parent("stale", "team-a"))
    assert c.load(_lister(objects, calls), ["team-*"]) == 2
    assert [w for w, _ in calls] == ["finetunejobs", "syntheticdatajobs", "taxonomies", "Job", "Pod", "ConfigMap",
                                     "Service", "Deployment"]  # fmt: skip
    assert dict(calls)["Job"] == MANAGED and dict(calls)["finetunejobs"] == ""
    assert [p["metadata"]["name"] for p in c.parents("finetunejobs")] == ["x"]  # stale one replaced
    assert set(c.children(("team-a", "finetunejob", "x")).jobs) == {"x-only"}


def test_prune_only_forgets_the_deleted_and_keeps_newer_records() -> None:
    c = Cache()
    c.observe_parent("finetunejobs", None, parent("kept", phase="Running"))
    c.observe_parent("finetunejobs", None, parent("gone"))
    c.observe_child("Job", None, child("Job", "kept-only", "kept"))
    c.observe_child("Job", None, child("Job", "gone-only", "gone"))
    objects = {"finetunejobs": [parent("kept", phase="Pending")], "Job": [child("Job", "kept-only", "kept")]}
    c.load(_lister(objects, []), prune_only=True)
    assert [p["metadata"]["name"] for p in c.parents("finetunejobs")] == ["kept"]
    assert c.parent("finetunejobs", "a", "kept")["status"]["phase"] == "Running"  # type: ignore[index]
    assert set(c.children(("a", "finetunejob", "kept")).jobs) == {"kept-only"}
    assert c.children(("a", "finetunejob", "gone")).jobs == {}


def test_pages_follow_continue_tokens() -> None:
    served = {None: {"items": [1, 2], "metadata": {"continue": "t1"}}, "t1": {"items": [3], "metadata": {}}}
    asked: list[str | None] = []

    def fetch(token: str | None) -> bytes:
        asked.append(token)
        return json.dumps(served[token]).encode()

    assert list(pages(fetch)) == [1, 2, 3] and asked == [None, "t1"]


def test_namespace_patterns_follow_kopf() -> None:
    assert watched("team-a", ["team-*"]) and not watched("other", ["team-*"])
    assert watched("anything", []) and watched("a", ["a", "b"])
    assert not watched("kube-system", ["!kube-*"]) and watched("default", ["!kube-*"])
    assert not watched("team-secret", ["team-*", "!team-secret"])


def test_resync_forgets_what_two_lists_in_a_row_lack() -> None:
    """A deletion the watches missed (kopf's relist after a 410 yields only what exists) leaves a ghost; a periodic
    resync drops an entry missing from two LISTs in a row — one absence alone may be an object created while the
    LIST ran — and names the parents whose children went."""
    from labrador_operator.controller.cache import CHILD_KINDS, PARENTS

    c = Cache()
    for name in ("kept", "ghost", "new"):
        c.observe_parent("finetunejobs", None, parent(name))
    c.observe_child("Job", None, child("Job", "kept-knowledge", "kept"))
    c.observe_child("Job", None, child("Job", "ghost-knowledge", "ghost"))
    world = {"finetunejobs": [parent("kept")], "Job": [child("Job", "kept-knowledge", "kept")]}

    def lister(what: str, selector: str) -> list[dict[str, Any]]:
        assert what in (*PARENTS, *CHILD_KINDS)
        return world.get(what, [])

    from prometheus_client import REGISTRY

    def forgotten() -> dict[str, float]:  # labrador_operator_cache_forgotten_total by store
        return {
            s: REGISTRY.get_sample_value("labrador_operator_cache_forgotten_total", {"store": s}) or 0.0
            for s in ("finetunejobs", "jobs", "pods")
        }

    before = forgotten()
    assert c.resync(lister) == set()  # first absence: suspects only
    assert c.parent("finetunejobs", "a", "ghost") is not None and c.parent("finetunejobs", "a", "new") is not None
    world["finetunejobs"].append(parent("new"))  # "new" was being created during the first LIST
    touched = c.resync(lister)
    assert touched == {("a", "finetunejob", "ghost")}
    assert {s: n - before[s] for s, n in forgotten().items()} == {"finetunejobs": 1, "jobs": 1, "pods": 0}
    assert (
        c.parent("finetunejobs", "a", "ghost") is None
        and "ghost-knowledge" not in c.children(("a", "finetunejob", "ghost")).jobs
    )
    assert c.parent("finetunejobs", "a", "new") is not None and c.parent("finetunejobs", "a", "kept") is not None
    assert set(c.children(("a", "finetunejob", "kept")).jobs) == {"kept-knowledge"}


def test_children_of_globbed_namespaces_are_listed_with_the_namespaces_unfiltered() -> None:
    """With namespace globs the cache's LIST first lists the cluster's namespaces: without the children's label
    selector (no namespace carries it — every child went missing from the startup load, and the resync then forgot
    every child the watches had brought)."""
    from urllib.parse import urlencode

    from labrador_operator.controller.client import Client

    asked: list[str] = []
    world = {
        "/api/v1/namespaces": [{"metadata": {"name": n}} for n in ("g-1", "g-2", "other")],
        "/apis/batch/v1/namespaces/g-1/jobs": [child("Job", "j1", "p", ns="g-1")],
        "/apis/batch/v1/namespaces/g-2/jobs": [],
    }

    class Response:
        def __init__(self, data: bytes) -> None:
            self.status, self.data = 200, data

        def read(self) -> bytes:
            return self.data

    class Api:
        def param_serialize(self, method: str, path: str, query_params: list[Any], **_: Any) -> tuple[str, str]:
            return path, urlencode(query_params)

        def call_api(self, path: str, query: str, **_: Any) -> Response:
            asked.append(f"{path}?{query}")
            selector = dict(q.split("=", 1) for q in query.split("&")).get("labelSelector")
            items = [] if path == "/api/v1/namespaces" and selector else world[path]
            return Response(json.dumps({"items": items}).encode())

    client = Client(api_client=Api())  # type: ignore[arg-type]
    jobs = list(client.list_objects("Job", MANAGED, ("g-*",)))
    assert [j["metadata"]["name"] for j in jobs] == ["j1"]
    assert asked[0] == "/api/v1/namespaces?limit=100"
    assert all("labelSelector=app.kubernetes.io" in q for q in asked[1:]) and len(asked) == 3
