"""Carry out a Plan: create missing children, patch children, patch status only where it changed, post Events."""

from __future__ import annotations

import logging
import threading
from typing import Any

import kopf

from labrador_operator import metrics
from labrador_operator.handlers import client
from labrador_operator.reconcile.plan import Plan, status_diff

log = logging.getLogger("labrador.apply")

#: status this process wrote last, per object: a reconcile may run on an index entry older than its own patch
_written: dict[tuple[str, str, str], dict[str, Any]] = {}
_written_lock = threading.Lock()


def forget(plural: str, namespace: str, name: str) -> None:
    with _written_lock:
        _written.pop((plural, namespace, name), None)


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
    key = (plural, ns, name)
    with _written_lock:
        current = {**(body.get("status") or {}), **_written.get(key, {})}
    diff = status_diff(current, plan.status)
    if diff:
        client.patch_status(plural, ns, name, diff)
        metrics.STATUS_PATCHES.labels(kind).inc()
        with _written_lock:
            _written[key] = {**_written.get(key, {}), **diff}
        old_phase, new_phase = current.get("phase"), diff.get("phase")
        if new_phase and new_phase != old_phase:
            reason, message = _transition_message(plan, new_phase)
            kopf.event(body, type="Warning" if new_phase == "Failed" else "Normal", reason=reason, message=message)
            metrics.JOBS_BY_PHASE.labels(kind, new_phase).inc()
            if old_phase:
                metrics.JOBS_BY_PHASE.labels(kind, old_phase).dec()
    return diff


def _transition_message(plan: Plan, phase: str) -> tuple[str, str]:
    conds = plan.status.get("conditions") or []
    failed = next((c for c in conds if c["type"] == "Failed" and c["status"] == "True"), None)
    if failed:
        return failed["reason"], failed["message"] or f"phase {phase}"
    for c in conds:
        if c["type"] in ("Running", "DataReady", "TaxonomyReady", "Ready", "Valid") and c.get("message"):
            return phase, c["message"]
    return phase, f"phase {phase}"
