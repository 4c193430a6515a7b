"""FineTuneJob handlers: thin. Load → decide (pure) → apply."""

from __future__ import annotations

import contextvars
from typing import Any

from labrador_operator import progress
from labrador_operator.api.finetune import PLURAL, FineTuneJobSpec, Phase
from labrador_operator.builders.finetune import KIND, Owner, phase_attempts
from labrador_operator.cache import CACHE, Key
from labrador_operator.handlers.apply import (
    RECONCILERS,
    current_status,
    enqueue,
    reconcile,
    with_pod_creation_problems,
    write_progress,
)
from labrador_operator.reconcile import finetune as decide
from labrador_operator.reconcile.observe import now_iso
from labrador_operator.settings import Settings

SETTINGS = Settings.from_env()
TERMINAL = {Phase.SUCCEEDED.value, Phase.FAILED.value}


def reconcile_finetunejob(body: dict[str, Any]) -> None:
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]

    def plan(spec: FineTuneJobSpec, status: dict[str, Any]) -> Any:
        kids = with_pod_creation_problems(PLURAL, ns, name, CACHE.children((ns, KIND.lower(), name), meta["uid"]))
        sdg = None
        if spec.data.synthetic_data_job_ref:
            sdg = CACHE.parent("syntheticdatajobs", ns, spec.data.synthetic_data_job_ref.name)
        return decide.plan(
            owner=Owner(ns, name, meta["uid"]),
            spec=spec,
            generation=meta.get("generation"),
            status=status,
            children=kids,
            dep=decide.data_from_sdg(spec, sdg),
            settings=SETTINGS,
        )

    reconcile(KIND, PLURAL, body, FineTuneJobSpec, plan)


RECONCILERS[PLURAL] = reconcile_finetunejob


def on_child(key: Key, context: contextvars.Context | None = None) -> None:
    """A child Job or Pod changed (handlers/events.py): reconcile its parent unless it has finished."""
    record = CACHE.record(PLURAL, key[0], key[2])
    if record is not None and record.phase not in TERMINAL:
        enqueue(PLURAL, key[0], key[2], context)


def data_source_changed(
    namespace: str, name: str, phase: str | None, context: contextvars.Context | None = None
) -> None:
    """A SyntheticDataJob changed (handlers/events.py): once it has finished, re-check the FineTuneJobs waiting for
    it."""
    if phase not in ("Succeeded", "Failed"):
        return
    for ft in CACHE.parents(PLURAL, namespace, phases=(None, Phase.WAITING.value)):
        ref = ((ft.get("spec") or {}).get("data") or {}).get("syntheticDataJobRef") or {}
        if ref.get("name") == name:
            enqueue(PLURAL, namespace, ft["metadata"]["name"], context)


def sample_progress(obj: dict[str, Any]) -> None:
    """Read rank 0's metrics and write status.progress, only when something moved (called by the sampler)."""
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    status = current_status(PLURAL, obj)
    current = status.get("currentPhase")
    if not current:
        return
    kids = CACHE.children((namespace, KIND.lower(), name), meta["uid"])
    attempts = phase_attempts(Owner(namespace, name, ""), current, kids.jobs)
    pod = kids.rank0(attempts[-1]) if attempts else None
    if pod is None or pod.ip is None:
        return
    text = progress.fetch(pod.ip, SETTINGS.metrics_port)
    if text is None:
        return
    sample = progress.parse(text, progress.TRAIN)

    def build(now: dict[str, Any]) -> dict[str, Any] | None:
        if now.get("currentPhase") != current:  # the next phase began meanwhile: this sample is the old one's
            return None
        phases = now.get("phases") or []
        done = sum(1 for p in phases if p.get("state") == "Succeeded")
        percent = progress.train_percent(done, len(phases), sample.get("step"), sample.get("totalSteps"))
        return progress.finish(sample, percent, now_iso(), now.get("progress"))

    write_progress(PLURAL, namespace, name, build)
