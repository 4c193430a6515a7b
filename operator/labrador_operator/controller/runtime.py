"""The controller runtime: one object per operator process that owns the cache, the API client, the work queue and
the status overlay, and carries out each reconcile's Plan — create missing children, patch children, patch status
only where it changed, post Events. Built once from the operator's configuration (controller/config.py); the kopf
handlers (handlers/) and the sampler reach everything through it, nothing through module globals."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Hashable
from datetime import datetime
from typing import Any

import kopf
from pydantic import BaseModel, ValidationError

from labrador_operator import metrics
from labrador_operator.controller import finetune, memory, sdg, taxonomy
from labrador_operator.controller.cache import Cache
from labrador_operator.controller.client import Client
from labrador_operator.controller.config import OperatorConfig
from labrador_operator.controller.progress import changed as progress_changed
from labrador_operator.controller.workqueue import WorkQueue
from labrador_operator.reconcile.observe import Children
from labrador_operator.reconcile.plan import Plan, condition, status_diff

log = logging.getLogger("labrador.apply")

#: failures in a row after which a reconcile error is written onto the resource (the first ones are often a blip)
RECONCILE_ERROR_AFTER = 3
RECONCILE_ERROR = "ReconcileError"
#: a Job creates its pods within moments; only a Job still short of pods after this long is asked about
POD_CREATION_GRACE = 10.0
#: while a Job stays short of pods, look again this often (the Job controller retries its creates, backing off to 60 s)
POD_CREATION_RECHECK = 20.0
#: how long an answer of KServe's API discovery holds (Runtime.with_kserve); a job waiting for KServe is looked at again
#: after it
KSERVE_RECHECK = 60.0
#: a FailedCreate Event last seen longer ago than this is about an earlier try, not today's shortage
FAILED_CREATE_FRESH = 180.0

Key3 = tuple[str, str, str]


def api_error(exc: BaseException) -> tuple[str, str]:
    """(reason, message) a user can act on: the API server's own words for a refused request (quota, admission,
    an invalid child), else the exception's."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        message = ""
        with contextlib.suppress(ValueError, AttributeError):
            message = str(json.loads(exc.body or "{}").get("message") or "")
        reason = {403: "Forbidden", 404: "NotFound", 409: "Conflict", 422: "Invalid"}.get(exc.status or 0, "APIError")
        return reason, f"the API server refused a request ({exc.status} {exc.reason}): {message or exc.reason}"
    return "InternalError", f"{type(exc).__name__}: {exc}"


class StatusOverlay:
    """The status this process wrote last, per object: a reconcile may run on a cached body older than its own
    patch, and deciding from it (e.g. a condition's lastTransitionTime) would undo that patch — and the patch's own
    watch event would undo this one, a loop for as long as the object runs."""

    def __init__(self) -> None:
        self._written: dict[Key3, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._written)

    def forget(self, plural: str, namespace: str, name: str) -> None:
        with self._lock:
            self._written.pop((plural, namespace, name), None)

    def settled(self, plural: str, body: dict[str, Any]) -> None:
        """Forget what we wrote to an object once a watch event shows all of it: the cache only moves forward from
        that event, so the overlay would add nothing — and held for every live object it cost ~6 KiB each (5,000
        jobs applied at once: ~30 MB until they finished)."""
        meta = body.get("metadata") or {}
        key = (plural, meta.get("namespace", ""), meta.get("name", ""))
        status = body.get("status") or {}
        with self._lock:
            written = self._written.get(key)
            if written is not None and all(status.get(k) == v for k, v in written.items()):
                del self._written[key]

    def current(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        """``body``'s status with what this process wrote last laid over it."""
        meta = body["metadata"]
        with self._lock:
            written = self._written.get((plural, meta["namespace"], meta["name"]), {})
        return {**(body.get("status") or {}), **written}

    def wrote(self, plural: str, namespace: str, name: str, fields: dict[str, Any]) -> None:
        key = (plural, namespace, name)
        with self._lock:
            self._written[key] = {**self._written.get(key, {}), **fields}


class Runtime:
    """Everything one operator process shares: built from ``config``; ``client`` and ``cache`` may be given (tests,
    benches)."""

    def __init__(self, config: OperatorConfig, *, client: Client | None = None, cache: Cache | None = None) -> None:
        self.config, self.settings = config, config.settings
        self.cache = cache if cache is not None else Cache(kserve=config.settings.kserve)
        #: (answer, when asked) of the last discovery of KServe's InferenceService API (``with_kserve``)
        self._kserve: tuple[bool, float] | None = None
        self.client = client if client is not None else Client(config.settings.reconcile_workers, config.kubeconfig)
        self.overlay = StatusOverlay()
        #: plural -> reconcile(runtime, body); one per parent kind, each in its kind's module
        self.reconcilers: dict[str, Callable[[Runtime, dict[str, Any]], None]] = {
            finetune.PLURAL: finetune.reconcile_finetunejob,
            sdg.PLURAL: sdg.reconcile_sdg,
            taxonomy.PLURAL: taxonomy.reconcile_taxonomy,
        }
        #: every reconcile goes through here (the watch handlers, the sampler's refreshes): one per object at a time
        self.queue = WorkQueue(
            self._reconcile_key,
            config.settings.reconcile_workers,
            on_idle=memory.maybe_trim,
            on_failure=self.reconcile_failed,
            on_recovered=self.reconcile_recovered,
            describe=lambda exc: None if (said := api_error(exc))[0] == "InternalError" else said[1],
        )

    # -- naming work --------------------------------------------------------------------------------------------

    def enqueue(self, plural: str, namespace: str, name: str, context: contextvars.Context | None = None) -> None:
        """Reconcile this object from the cache soon (once, however often it is named before that)."""
        self.queue.add((plural, namespace, name), context)

    def enqueue_unless(
        self, plural: str, namespace: str, name: str, phases: Collection[str], context: contextvars.Context | None
    ) -> None:
        """Reconcile this object unless the cache has it in one of ``phases`` (a finished job: its children's
        events change nothing) or does not have it at all."""
        record = self.cache.record(plural, namespace, name)
        if record is not None and record.phase not in phases:
            self.enqueue(plural, namespace, name, context)

    def _reconcile_key(self, key: Hashable) -> None:
        plural, namespace, name = key  # type: ignore[misc]
        body = self.cache.parent(plural, namespace, name)
        if body is not None:
            self.reconcilers[plural](self, body)

    def reconcile_failed(self, key: Hashable, failures: int, exc: BaseException) -> None:
        """From the RECONCILE_ERROR_AFTER-th failure in a row: a ReconcileError condition with the API's message and
        a Warning Event (each once per distinct message) — never only a log line. Cleared by the next success."""
        if failures < RECONCILE_ERROR_AFTER:
            return
        plural, namespace, name = key  # type: ignore[misc]
        body = self.cache.parent(plural, namespace, name)
        if body is None:
            return
        reason, said = api_error(exc)
        said = said[:900]
        message = f"{said} ({failures} attempts; retrying)"
        prev = self.current_status(plural, body).get("conditions") or []
        old = next((c for c in prev if c.get("type") == RECONCILE_ERROR), None)
        if old and old.get("status") == "True" and old.get("message", "").startswith(f"{said} ("):
            return  # said already; the attempt count alone is not worth a write
        gen = body["metadata"].get("generation")
        conds = [c for c in prev if c.get("type") != RECONCILE_ERROR]
        conds.append(condition(RECONCILE_ERROR, True, reason, message, gen, prev))
        self.write_status(plural, namespace, name, {"conditions": conds})
        kopf.event(body, type="Warning", reason=RECONCILE_ERROR, message=message)

    def reconcile_recovered(self, key: Hashable) -> None:
        """A reconcile succeeded after failures: take the ReconcileError condition off (the reconcile's own status
        write usually has: its conditions list is written whole)."""
        plural, namespace, name = key  # type: ignore[misc]
        body = self.cache.parent(plural, namespace, name)
        if body is None:
            return
        prev = self.current_status(plural, body).get("conditions") or []
        if any(c.get("type") == RECONCILE_ERROR for c in prev):
            kept = [c for c in prev if c.get("type") != RECONCILE_ERROR]
            self.write_status(plural, namespace, name, {"conditions": kept})

    # -- what the cache cannot say --------------------------------------------------------------------------------

    def with_pod_creation_problems(self, plural: str, namespace: str, name: str, kids: Children) -> Children:
        """Add to ``kids`` why the API server refused a Job's pods (quota, LimitRange, Pod Security admission): the
        Job controller says it only in a ``FailedCreate`` Event, and no watch event tells the operator the pods never
        came. Asks only about Jobs still short of pods after ``POD_CREATION_GRACE`` (one filtered read from the API
        server's watch cache each), and names the parent again later while they stay short, so the reason appears —
        and goes once the pods exist — without any other change."""
        now = time.time()
        for job in kids.jobs.values():
            if not kids.missing_pods(job.name):
                continue
            age = now - datetime.fromisoformat(job.created).timestamp() if job.created else POD_CREATION_GRACE
            if age < POD_CREATION_GRACE:
                self.queue.add_after((plural, namespace, name), POD_CREATION_GRACE - age)
                continue
            message = self.client.failed_create(namespace, job.uid, since=now - FAILED_CREATE_FRESH)
            if message:
                kids.job_problems[job.name] = ("FailedCreate", f"the API server refused the pods of Job {job.name}: "
                                                              f"{message[:600]}")  # fmt: skip
            self.queue.add_after((plural, namespace, name), POD_CREATION_RECHECK)
        return kids

    def with_kserve(self, plural: str, namespace: str, name: str, kids: Children) -> Children:
        """Add to ``kids`` whether the cluster serves KServe's InferenceService API, for a job that asks for runtime
        kserve: one discovery request, its answer kept ``KSERVE_RECHECK`` seconds. While the API is missing the job is
        named again after that, so its Serving condition clears once KServe is installed (no watch event says so)."""
        if not self.settings.kserve:
            return kids
        now = time.monotonic()
        if self._kserve is None or now - self._kserve[1] > KSERVE_RECHECK:
            self._kserve = (self.client.kserve_installed(), now)
        kids.kserve_installed = self._kserve[0]
        if not kids.kserve_installed:
            self.queue.add_after((plural, namespace, name), KSERVE_RECHECK)
        return kids

    # -- status -------------------------------------------------------------------------------------------------

    def current_status(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.overlay.current(plural, body)

    def write_status(self, plural: str, namespace: str, name: str, fields: dict[str, Any]) -> None:
        """Patch status fields and remember them as this process's last word on the object."""
        self.client.patch_status(plural, namespace, name, fields)
        self.overlay.wrote(plural, namespace, name, fields)

    def write_progress(
        self, plural: str, namespace: str, name: str, build: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> None:
        """The sampler's write of status.progress, made while no reconcile of the object runs (the work queue's
        exclusive section) and decided on the status as it is then: a job a reconcile has just finished (100 %, no
        ETA) is never set back to the sample taken while it ran. ``build(status)`` returns the new progress or
        None."""

        def write() -> None:
            body = self.cache.parent(plural, namespace, name)
            if body is None:
                return
            status = self.current_status(plural, body)
            if status.get("phase") != "Running":
                return
            new = build(status)
            if new is not None and progress_changed(status.get("progress"), new):
                self.write_status(plural, namespace, name, {"progress": new})

        if not self.queue.exclusive((plural, namespace, name), write):
            log.debug("%s %s/%s: busy reconciling, progress sample dropped", plural, namespace, name)

    # -- carrying out a plan --------------------------------------------------------------------------------------

    def apply(self, plan: Plan, *, kind: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        """Returns the status fields written (empty when nothing changed)."""
        meta = body["metadata"]
        ns, name = meta["namespace"], meta["name"]
        for manifest in plan.create:
            child = manifest["metadata"]["name"]
            if self.client.recently_created(manifest["kind"], ns, child):
                continue
            if self.client.create(manifest):
                metrics.CHILDREN_CREATED.labels(kind, manifest["kind"]).inc()
                log.info("%s %s/%s: created %s %s", kind, ns, name, manifest["kind"], child)
        for child_kind, child, patch in plan.patch:
            self.client.patch_child(child_kind, ns, child, patch)
        for child_kind, child in plan.delete:
            self.client.delete_child(child_kind, ns, child)
            log.info("%s %s/%s: deleted %s %s", kind, ns, name, child_kind, child)
        current = self.current_status(plural, body)
        diff = status_diff(current, plan.status)
        if diff:
            self.write_status(plural, ns, name, diff)
            metrics.STATUS_PATCHES.labels(kind).inc()
            old_phase, new_phase = current.get("phase"), diff.get("phase")
            if new_phase and new_phase != old_phase:
                reason, message = _transition_message(plan, new_phase)
                kind_of_event = "Warning" if new_phase == "Failed" else "Normal"
                kopf.event(body, type=kind_of_event, reason=reason, message=message)
                metrics.JOBS_BY_PHASE.labels(kind, new_phase).inc()
                if old_phase:
                    metrics.JOBS_BY_PHASE.labels(kind, old_phase).dec()
        return diff

    def reconcile(
        self,
        kind: str,
        plural: str,
        body: dict[str, Any],
        spec_model: type[BaseModel],
        decide: Callable[[Any, dict[str, Any]], Plan],
    ) -> None:
        """Parse the spec, decide from the current status, apply; an unparsable spec becomes a Failed status, never
        a crash loop. Called only by the work queue (``reconcilers``), with the body it just read from the cache: the
        queue runs one reconcile per object at a time, so no lock here and no second read."""
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            return
        t0 = time.perf_counter()
        result = "ok"
        try:
            try:
                spec = spec_model.model_validate(body.get("spec") or {})
            except ValidationError as e:
                self.apply(invalid_spec_plan(e, meta.get("generation"), self.current_status(plural, body)),
                           kind=kind, plural=plural, body=body)  # fmt: skip
                result = "invalid"
                return
            self.apply(decide(spec, self.current_status(plural, body)), kind=kind, plural=plural, body=body)
        except Exception:
            result = "error"
            raise
        finally:
            metrics.RECONCILES.labels(kind, result).inc()
            metrics.RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - t0)

    def shutdown(self) -> None:
        """Reconciles not yet started are dropped (a restart lists everything again); running ones finish."""
        self.queue.shutdown()


def invalid_spec_plan(e: ValidationError, gen: int | None, status: dict[str, Any]) -> Plan:
    """A spec the API's model refuses (one the CRD's schema let through) ends the resource Failed, saying where."""
    err = e.errors()[0]
    msg = f"spec is invalid at {'.'.join(str(x) for x in err['loc'])}: {err['msg']}"
    prev = status.get("conditions")
    return Plan(
        status={
            "phase": "Failed",
            "observedGeneration": gen,
            "conditions": [
                condition("Failed", True, "InvalidSpec", msg, gen, prev),
                condition("Ready", False, "InvalidSpec", msg, gen, prev),
            ],
        }
    )


def _transition_message(plan: Plan, phase: str) -> tuple[str, str]:
    conds = plan.status.get("conditions") or []
    failed = next((c for c in conds if c["type"] == "Failed" and c["status"] == "True"), None)
    if failed:
        return failed["reason"], failed["message"] or f"phase {phase}"
    for c in conds:
        if c["type"] in ("Running", "DataReady", "TaxonomyReady", "Promoted", "Ready", "Valid") and c.get("message"):
            return phase, c["message"]
    return phase, f"phase {phase}"
