"""What the operator knows of its objects: small records, filled by one paginated LIST per kind at startup and kept
current by the watch events the handlers receive. Reconciles read it instead of calling the API (no GETs).

Not kopf's indexes: at startup kopf holds every object's handlers until every object of every indexed kind is
indexed, and wakes all waiting objects each time one more is indexed — quadratic in the number of objects. Measured
on 1,000 finished FineTuneJobs (6,000 objects with their children): 90 s of CPU before the first handler ran, and
every decoded object held in memory meanwhile; 5,000 jobs would take about 25 times that. kopf runs startup
handlers before it starts watching, so the LIST below is complete before the first event; the events then keep the
records current, in the same order kopf delivers them per object.

Records: parents (FineTuneJob, SyntheticDataJob, Taxonomy) as spec + status + the metadata a reconcile needs;
children (labelled ``app.kubernetes.io/managed-by=labrador-operator``) as JobState / PodState / names, grouped by
parent key ``(namespace, parent kind, parent name)``.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from labrador_operator import metrics
from labrador_operator.constants import API_GROUP, API_VERSION, LABEL_MANAGED_BY, MANAGED_BY
from labrador_operator.reconcile.observe import (
    Children,
    DeploymentState,
    InferenceServiceState,
    JobState,
    PodState,
    deployment_state,
    inference_service_state,
    job_state,
    parent_key,
    pod_state,
)

Key = tuple[str, str, str]
PARENTS = ("finetunejobs", "syntheticdatajobs", "taxonomies")
PARENT_KINDS = {"finetunejobs": "FineTuneJob", "syntheticdatajobs": "SyntheticDataJob", "taxonomies": "Taxonomy"}
#: a child's parent key names the kind as its label does ("finetunejob"): the plural the work queue keys on
PLURAL_OF_LABEL = {kind.lower(): plural for plural, kind in PARENT_KINDS.items()}
CHILD_KINDS = ("Job", "Pod", "ConfigMap", "Service", "Deployment")
#: listed and watched only when the operator manages KServe InferenceServices (Settings.kserve)
KSERVE_KIND = "InferenceService"
MANAGED = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
#: metadata a reconcile and its Events need; not managedFields or kubectl's last-applied copy of the spec
#: objects per LIST page, in the cache's LIST and in kopf's initial listing: each page is decoded whole, and a page
#: of 500 Pods held ~20 MB of Python objects at once — memory CPython then kept (measured: restart over 1,000 finished
#: jobs 243 -> 167 MiB RSS going from 500 to 100)
PAGE = 100
SUMMARY_META = ("name", "namespace", "uid", "generation", "resourceVersion", "deletionTimestamp", "labels")


def watched(namespace: str, patterns: Iterable[str]) -> bool:
    """kopf's namespace patterns: globs, ``!glob`` excludes; no include pattern means every namespace."""
    pats = list(patterns)
    includes = [p for p in pats if not p.startswith("!")]
    if includes and not any(fnmatch.fnmatchcase(namespace, p) for p in includes):
        return False
    return not any(fnmatch.fnmatchcase(namespace, p[1:]) for p in pats if p.startswith("!"))


def summary(plural: str, body: dict[str, Any]) -> dict[str, Any]:
    """What a reconcile (and an Event about the object) needs. LIST items carry no apiVersion/kind."""
    meta = body.get("metadata") or {}
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": PARENT_KINDS[plural],
        "metadata": {k: meta[k] for k in SUMMARY_META if k in meta},
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }


log = logging.getLogger("labrador.cache")


@dataclass(frozen=True, slots=True)
class ParentRecord:
    """A parent as the cache holds it: its summary as compact JSON (a decoded FineTuneJob summary is ~11 KiB of Python
    objects, its JSON ~2 KiB: 5,000 jobs held 58 MB of dicts and strings) and its phase, which the hot paths filter
    on without decoding. ``body()`` decodes a fresh copy each call: callers may change it."""

    blob: str
    phase: str | None

    def body(self) -> dict[str, Any]:
        return json.loads(self.blob)  # type: ignore[no-any-return]


class Cache:
    """Thread-safe: the watch handlers run in kopf's event loop, the reconciles in the work queue's threads, the
    sampler in its own."""

    def __init__(self, *, kserve: bool = False) -> None:
        #: the child kinds the LISTs load: InferenceServices too when the operator manages them
        self.child_kinds = (*CHILD_KINDS, KSERVE_KIND) if kserve else CHILD_KINDS
        self._lock = threading.Lock()
        self._parents: dict[str, dict[tuple[str, str], ParentRecord]] = {p: {} for p in PARENTS}
        self._jobs: dict[Key, dict[str, JobState]] = {}
        self._pods: dict[Key, dict[str, PodState]] = {}
        self._config_maps: dict[Key, set[str]] = {}
        self._services: dict[Key, set[str]] = {}
        self._deployments: dict[Key, dict[str, DeploymentState]] = {}
        self._inference_services: dict[Key, dict[str, InferenceServiceState]] = {}
        #: entries the last resync's LIST did not have (forgotten if the next one lacks them too)
        self._suspects: set[tuple[str, Any, str]] = set()

    # --- parents -----------------------------------------------------------------------------------------------
    def observe_parent(self, plural: str, event_type: str | None, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if event_type == "DELETED":
            with self._lock:
                self._parents[plural].pop(key, None)
            return
        record = ParentRecord(
            json.dumps(summary(plural, body), separators=(",", ":")), (body.get("status") or {}).get("phase")
        )
        with self._lock:
            self._parents[plural][key] = record

    def record(self, plural: str, namespace: str, name: str) -> ParentRecord | None:
        """The object's record (``.phase`` without decoding), None when it does not exist."""
        with self._lock:
            return self._parents[plural].get((namespace, name))

    def parent(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        record = self.record(plural, namespace, name)
        return None if record is None else record.body()

    def parents(
        self, plural: str, namespace: str | None = None, phases: Collection[str | None] | None = None
    ) -> list[dict[str, Any]]:
        """The objects (of ``namespace``, in ``phases`` when given), decoded."""
        with self._lock:
            picked = [
                r
                for (ns, _), r in self._parents[plural].items()
                if (namespace is None or ns == namespace) and (phases is None or r.phase in phases)
            ]
        return [r.body() for r in picked]

    # --- children ----------------------------------------------------------------------------------------------
    def observe_child(self, kind: str, event_type: str | None, body: dict[str, Any]) -> Key | None:
        """Record (or forget, when deleted) one child; returns its parent key, None for objects of no parent."""
        key = parent_key(body)
        if key is None:
            return None
        name = (body.get("metadata") or {}).get("name", "")
        deleted = event_type == "DELETED"
        with self._lock:
            if kind == "Job":
                self._put(self._jobs, key, name, None if deleted else job_state(body))
            elif kind == "Pod":
                self._put(self._pods, key, name, None if deleted else pod_state(body))
            elif kind == "Deployment":
                self._put(self._deployments, key, name, None if deleted else deployment_state(body))
            elif kind == KSERVE_KIND:
                self._put(self._inference_services, key, name, None if deleted else inference_service_state(body))
            else:
                names = (self._config_maps if kind == "ConfigMap" else self._services).setdefault(key, set())
                (names.discard if deleted else names.add)(name)
                if not names:
                    (self._config_maps if kind == "ConfigMap" else self._services).pop(key, None)
        return key

    @staticmethod
    def _put(store: dict[Key, dict[str, Any]], key: Key, name: str, record: Any) -> None:
        if record is None:
            entries = store.get(key)
            if entries is not None:
                entries.pop(name, None)
                if not entries:
                    store.pop(key, None)
        else:
            store.setdefault(key, {})[name] = record

    def children(self, key: Key, owner_uid: str | None = None) -> Children:
        """A parent's children; with ``owner_uid``, only what that parent object owns (``Children.owned_by``)."""
        with self._lock:
            kids = Children(
                jobs=dict(self._jobs.get(key, {})),
                pods=dict(self._pods.get(key, {})),
                config_maps=set(self._config_maps.get(key, ())),
                services=set(self._services.get(key, ())),
                deployments=dict(self._deployments.get(key, {})),
                inference_services=dict(self._inference_services.get(key, {})),
            )
        return kids.owned_by(owner_uid) if owner_uid is not None else kids

    # --- startup -----------------------------------------------------------------------------------------------
    def load(
        self,
        lister: Callable[[str, str], Iterable[dict[str, Any]]],
        namespaces: Iterable[str] = (),
        *,
        prune_only: bool = False,
    ) -> int:
        """One LIST per kind: ``lister(kind_or_plural, label_selector)`` yields the objects of the watched scope
        (filtered here by ``namespaces``, which may be globs like kopf's). At startup (before any event) the cache
        becomes exactly that. With ``prune_only`` (a standby taking over while events flow again) it only forgets
        what no longer exists: kopf re-lists on resume and its events carry the current state of everything else."""
        fresh, count = self._listed(lister, namespaces)
        with self._lock:
            if not prune_only:
                self._parents, self._jobs, self._pods = fresh._parents, fresh._jobs, fresh._pods
                self._config_maps, self._services = fresh._config_maps, fresh._services
                self._deployments, self._inference_services = fresh._deployments, fresh._inference_services
                return count
            self._forget(self._entries() - fresh._entries())
        return count

    def _listed(
        self, lister: Callable[[str, str], Iterable[dict[str, Any]]], namespaces: Iterable[str]
    ) -> tuple[Cache, int]:
        fresh = Cache(kserve=KSERVE_KIND in self.child_kinds)
        patterns = list(namespaces)
        count = 0
        for what in (*PARENTS, *self.child_kinds):
            for obj in lister(what, "" if what in PARENTS else MANAGED):
                ns = (obj.get("metadata") or {}).get("namespace", "")
                if not watched(ns, patterns):
                    continue
                if what in PARENTS:
                    fresh.observe_parent(what, None, obj)
                else:
                    fresh.observe_child(what, None, obj)
                count += 1
        return fresh, count

    def _children_stores(self) -> dict[str, dict[Key, Any]]:
        return {
            "jobs": self._jobs,
            "pods": self._pods,
            "configmaps": self._config_maps,
            "services": self._services,
            "deployments": self._deployments,
            "inferenceservices": self._inference_services,
        }

    def _entries(self) -> set[tuple[str, Any, str]]:
        """Every entry as (store, key, name): parents as ("parent:<plural>", (ns, name), "")."""
        out: set[tuple[str, Any, str]] = set()
        for plural, entries in self._parents.items():
            out.update((f"parent:{plural}", key, "") for key in entries)
        for store, items in self._children_stores().items():
            for key, names in items.items():
                out.update((store, key, n) for n in names)
        return out

    def _forget(self, entries: Iterable[tuple[str, Any, str]]) -> set[Key]:
        """Drop ``entries`` (see ``_entries``; the lock held); returns the parents whose children went."""
        stores = self._children_stores()
        touched: set[Key] = set()
        for store, key, name in entries:
            if store.startswith("parent:"):
                self._parents[store.removeprefix("parent:")].pop(key, None)
                continue
            names = stores[store].get(key)
            if names is None:
                continue
            (names.pop if isinstance(names, dict) else names.discard)(name)  # type: ignore[attr-defined]
            if not names:
                del stores[store][key]
            touched.add(key)
        return touched

    def resync(
        self, lister: Callable[[str, str], Iterable[dict[str, Any]]], namespaces: Iterable[str] = ()
    ) -> set[Key]:
        """Forget objects the watches missed the deletion of: kopf re-lists after a watch expires (410 Gone) and
        yields only what exists, so a deletion in between never reaches the cache. An entry absent from two resync
        LISTs in a row is dropped (one absence alone may be an object created while the LIST ran). Returns the
        parents whose children were dropped (their reconcile should run again)."""
        fresh, _ = self._listed(lister, namespaces)
        listed = fresh._entries()
        with self._lock:
            missing = self._entries() - listed
            gone = missing & self._suspects
            self._suspects = missing - gone
            touched = self._forget(gone)
        if gone:
            log.info("resync: forgot %d object(s) whose deletion the watches missed", len(gone))
            for store, _, _ in gone:
                metrics.CACHE_FORGOTTEN.labels(store.removeprefix("parent:")).inc()
        return touched

    def sizes(self) -> dict[str, int]:
        with self._lock:
            out = {p: len(v) for p, v in self._parents.items()}
            out["jobs"] = sum(len(v) for v in self._jobs.values())
            out["pods"] = sum(len(v) for v in self._pods.values())
            out["configmaps"] = sum(len(v) for v in self._config_maps.values())
            out["services"] = sum(len(v) for v in self._services.values())
            out["deployments"] = sum(len(v) for v in self._deployments.values())
            if KSERVE_KIND in self.child_kinds:
                out["inferenceservices"] = sum(len(v) for v in self._inference_services.values())
            return out


def pages(fetch: Callable[[str | None], bytes]) -> Iterator[dict[str, Any]]:
    """Items of a paginated LIST: ``fetch(continue_token)`` returns one page's raw JSON."""
    token: str | None = None
    while True:
        page = json.loads(fetch(token))
        yield from page.get("items") or []
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return
