"""Carry out a Plan: create missing children, patch children, patch status only where it changed, post Events."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import threading
import time
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any

import kopf
from pydantic import BaseModel, ValidationError

from labrador_operator import memory, metrics
from labrador_operator.cache import CACHE
from labrador_operator.handlers import client
from labrador_operator.progress import changed as progress_changed
from labrador_operator.reconcile.observe import Children
from labrador_operator.reconcile.plan import Plan, condition, status_diff
from labrador_operator.settings import Settings
from labrador_operator.workqueue import WorkQueue

log = logging.getLogger("labrador.apply")

#: plural -> reconcile(body); each parent kind's module registers its own
RECONCILERS: dict[str, Callable[[dict[str, Any]], None]] = {}


def _reconcile_key(key: Hashable) -> None:
    plural, namespace, name = key  # type: ignore[misc]
    body = CACHE.parent(plural, namespace, name)
    if body is not None:
        RECONCILERS[plural](body)


#: failures in a row after which a reconcile error is written onto the resource (the first ones are often a blip)
RECONCILE_ERROR_AFTER = 3
RECONCILE_ERROR = "ReconcileError"


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


def reconcile_failed(key: Hashable, failures: int, exc: BaseException) -> None:
    """From the RECONCILE_ERROR_AFTER-th failure in a row: a ReconcileError condition with the API's message and a
    Warning Event (each once per distinct message) — never only a log line. Cleared by the next success."""
    if failures < RECONCILE_ERROR_AFTER:
        return
    plural, namespace, name = key  # type: ignore[misc]
    body = CACHE.parent(plural, namespace, name)
    if body is None:
        return
    reason, said = api_error(exc)
    said = said[:900]
    message = f"{said} ({failures} attempts; retrying)"
    prev = current_status(plural, body).get("conditions") or []
    old = next((c for c in prev if c.get("type") == RECONCILE_ERROR), None)
    if old and old.get("status") == "True" and old.get("message", "").startswith(f"{said} ("):
        return  # said already; the attempt count alone is not worth a write
    gen = body["metadata"].get("generation")
    conds = [c for c in prev if c.get("type") != RECONCILE_ERROR]
    conds.append(condition(RECONCILE_ERROR, True, reason, message, gen, prev))
    write_status(plural, namespace, name, {"conditions": conds})
    kopf.event(body, type="Warning", reason=RECONCILE_ERROR, message=message)


def reconcile_recovered(key: Hashable) -> None:
    """A reconcile succeeded after failures: take the ReconcileError condition off (the reconcile's own status
    write usually has: its conditions list is written whole)."""
    plural, namespace, name = key  # type: ignore[misc]
    body = CACHE.parent(plural, namespace, name)
    if body is None:
        return
    prev = current_status(plural, body).get("conditions") or []
    if any(c.get("type") == RECONCILE_ERROR for c in prev):
        write_status(plural, namespace, name, {"conditions": [c for c in prev if c.get("type") != RECONCILE_ERROR]})


#: every reconcile goes through here (handlers/events.py, the sampler's refreshes): one per object at a time
QUEUE = WorkQueue(
    _reconcile_key,
    Settings.from_env().reconcile_workers,
    on_idle=memory.maybe_trim,
    on_failure=reconcile_failed,
    on_recovered=reconcile_recovered,
    describe=lambda exc: None if (said := api_error(exc))[0] == "InternalError" else said[1],
)


def enqueue(plural: str, namespace: str, name: str, context: contextvars.Context | None = None) -> None:
    """Reconcile this object from the cache soon (once, however often it is named before that)."""
    QUEUE.add((plural, namespace, name), context)


#: a Job creates its pods within moments; only a Job still short of pods after this long is asked about
POD_CREATION_GRACE = 10.0
#: while a Job stays short of pods, look again this often (the Job controller retries its creates, backing off to 60 s)
POD_CREATION_RECHECK = 20.0
#: a FailedCreate Event last seen longer ago than this is about an earlier try, not today's shortage
FAILED_CREATE_FRESH = 180.0


def with_pod_creation_problems(plural: str, namespace: str, name: str, kids: Children) -> Children:
    """Add to ``kids`` why the API server refused a Job's pods (quota, LimitRange, Pod Security admission): the Job
    controller says it only in a ``FailedCreate`` Event, and no watch event tells the operator the pods never came.
    Asks only about Jobs still short of pods after ``POD_CREATION_GRACE`` (one filtered read from the API server's
    watch cache each), and names the parent again later while they stay short, so the reason appears — and goes once
    the pods exist — without any other change."""
    now = time.time()
    for job in kids.jobs.values():
        if not kids.missing_pods(job.name):
            continue
        age = now - datetime.fromisoformat(job.created).timestamp() if job.created else POD_CREATION_GRACE
        if age < POD_CREATION_GRACE:
            QUEUE.add_after((plural, namespace, name), POD_CREATION_GRACE - age)
            continue
        message = client.failed_create(namespace, job.uid, since=now - FAILED_CREATE_FRESH)
        if message:
            kids.job_problems[job.name] = ("FailedCreate", f"the API server refused the pods of Job {job.name}: "
                                                          f"{message[:600]}")  # fmt: skip
        QUEUE.add_after((plural, namespace, name), POD_CREATION_RECHECK)
    return kids


#: status this process wrote last, per object: a reconcile may run on a cached body older than its own patch
_written: dict[tuple[str, str, str], dict[str, Any]] = {}
_written_lock = threading.Lock()


def forget(plural: str, namespace: str, name: str) -> None:
    with _written_lock:
        _written.pop((plural, namespace, name), None)


def settled(plural: str, body: dict[str, Any]) -> None:
    """Forget what we wrote to an object once a watch event shows all of it: the cache only moves forward from that
    event, so the overlay would add nothing — and held for every live object it cost ~6 KiB each (5,000 jobs applied
    at once: ~30 MB until they finished)."""
    meta = body.get("metadata") or {}
    key = (plural, meta.get("namespace", ""), meta.get("name", ""))
    status = body.get("status") or {}
    with _written_lock:
        written = _written.get(key)
        if written is not None and all(status.get(k) == v for k, v in written.items()):
            del _written[key]


def current_status(plural: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body``'s status with what this process wrote last laid over it: an event or the cache may predate our own
    patch, and deciding from it (e.g. a condition's lastTransitionTime) would undo that patch — and the patch's own
    watch event would undo this one, a loop for as long as the object runs."""
    meta = body["metadata"]
    with _written_lock:
        written = _written.get((plural, meta["namespace"], meta["name"]), {})
    return {**(body.get("status") or {}), **written}


def write_progress(
    plural: str, namespace: str, name: str, build: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> None:
    """The sampler's write of status.progress, made while no reconcile of the object runs (the work queue's
    exclusive section) and decided on the status as it is then: a job a reconcile has just finished (100 %, no ETA)
    is never set back to the sample taken while it ran. ``build(status)`` returns the new progress or None."""

    def write() -> None:
        body = CACHE.parent(plural, namespace, name)
        if body is None:
            return
        status = current_status(plural, body)
        if status.get("phase") != "Running":
            return
        new = build(status)
        if new is not None and progress_changed(status.get("progress"), new):
            write_status(plural, namespace, name, {"progress": new})

    if not QUEUE.exclusive((plural, namespace, name), write):
        log.debug("%s %s/%s: busy reconciling, progress sample dropped", plural, namespace, name)


def write_status(plural: str, namespace: str, name: str, fields: dict[str, Any]) -> None:
    """Patch status fields and remember them as this process's last word on the object."""
    client.patch_status(plural, namespace, name, fields)
    key = (plural, namespace, name)
    with _written_lock:
        _written[key] = {**_written.get(key, {}), **fields}


def apply(plan: Plan, *, kind: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
    """Returns the status fields written (empty when nothing changed)."""
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    for manifest in plan.create:
        child = manifest["metadata"]["name"]
        if client.recently_created(manifest["kind"], ns, child):
            continue
        if client.create(manifest):
            metrics.CHILDREN_CREATED.labels(kind, manifest["kind"]).inc()
            log.info("%s %s/%s: created %s %s", kind, ns, name, manifest["kind"], child)
    for child_kind, child, patch in plan.patch:
        client.patch_child(child_kind, ns, child, patch)
    current = current_status(plural, body)
    diff = status_diff(current, plan.status)
    if diff:
        write_status(plural, ns, name, diff)
        metrics.STATUS_PATCHES.labels(kind).inc()
        old_phase, new_phase = current.get("phase"), diff.get("phase")
        if new_phase and new_phase != old_phase:
            reason, message = _transition_message(plan, new_phase)
            kopf.event(body, type="Warning" if new_phase == "Failed" else "Normal", reason=reason, message=message)
            metrics.JOBS_BY_PHASE.labels(kind, new_phase).inc()
            if old_phase:
                metrics.JOBS_BY_PHASE.labels(kind, old_phase).dec()
    return diff


def reconcile(
    kind: str,
    plural: str,
    body: dict[str, Any],
    spec_model: type[BaseModel],
    decide: Callable[[Any, dict[str, Any]], Plan],
) -> None:
    """Parse the spec, decide from the current status, apply; an unparsable spec becomes a Failed status, never a
    crash loop. Called only by the work queue (``RECONCILERS``), with the body it just read from the cache: the queue
    runs one reconcile per object at a time, so no lock here and no second read."""
    meta = body["metadata"]
    if meta.get("deletionTimestamp"):
        return
    t0 = time.perf_counter()
    result = "ok"
    try:
        try:
            spec = spec_model.model_validate(body.get("spec") or {})
        except ValidationError as e:
            err = e.errors()[0]
            msg = f"spec is invalid at {'.'.join(str(x) for x in err['loc'])}: {err['msg']}"
            gen = meta.get("generation")
            prev = current_status(plural, body).get("conditions")
            bad = Plan(
                status={
                    "phase": "Failed",
                    "observedGeneration": gen,
                    "conditions": [
                        condition("Failed", True, "InvalidSpec", msg, gen, prev),
                        condition("Ready", False, "InvalidSpec", msg, gen, prev),
                    ],
                }
            )
            apply(bad, kind=kind, plural=plural, body=body)
            result = "invalid"
            return
        apply(decide(spec, current_status(plural, body)), kind=kind, plural=plural, body=body)
    except Exception:
        result = "error"
        raise
    finally:
        metrics.RECONCILES.labels(kind, result).inc()
        metrics.RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - t0)


def _transition_message(plan: Plan, phase: str) -> tuple[str, str]:
    conds = plan.status.get("conditions") or []
    failed = next((c for c in conds if c["type"] == "Failed" and c["status"] == "True"), None)
    if failed:
        return failed["reason"], failed["message"] or f"phase {phase}"
    for c in conds:
        if c["type"] in ("Running", "DataReady", "TaxonomyReady", "Ready", "Valid") and c.get("message"):
            return phase, c["message"]
    return phase, f"phase {phase}"
