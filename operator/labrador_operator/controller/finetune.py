"""FineTuneJob in the controller: load from the cache → decide (reconcile/finetune.py, pure) → apply; what a change
of a child or of a SyntheticDataJob names for a reconcile; rank 0's progress for the sampler."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

from labrador_operator.api.finetune import PLURAL, FineTuneJobSpec, Phase
from labrador_operator.builders.finetune import KIND, Owner, phase_attempts
from labrador_operator.controller import progress
from labrador_operator.controller.cache import Key
from labrador_operator.reconcile import finetune as decide
from labrador_operator.reconcile.observe import now_iso

if TYPE_CHECKING:
    from labrador_operator.controller.runtime import Runtime

TERMINAL = {Phase.SUCCEEDED.value, Phase.FAILED.value}


def reconcile_finetunejob(rt: Runtime, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]

    def plan(spec: FineTuneJobSpec, status: dict[str, Any]) -> Any:
        kids = rt.with_pod_creation_problems(PLURAL, ns, name, rt.cache.children((ns, KIND.lower(), name), meta["uid"]))
        if spec.serve is not None and spec.serve.runtime == "kserve":
            kids = rt.with_kserve(PLURAL, ns, name, kids)
        sdg = None
        if spec.data.synthetic_data_job_ref:
            sdg = rt.cache.parent("syntheticdatajobs", ns, spec.data.synthetic_data_job_ref.name)
        return decide.plan(
            owner=Owner(ns, name, meta["uid"]),
            spec=spec,
            generation=meta.get("generation"),
            status=status,
            children=kids,
            dep=decide.data_from_sdg(spec, sdg),
            settings=rt.settings,
        )

    rt.reconcile(KIND, PLURAL, body, FineTuneJobSpec, plan)


def on_child(rt: Runtime, key: Key, context: contextvars.Context | None = None) -> None:
    """A child Job or Pod changed (handlers/children.py): reconcile its parent unless it has finished."""
    rt.enqueue_unless(PLURAL, key[0], key[2], TERMINAL, context)


def on_serving_child(rt: Runtime, key: Key, context: contextvars.Context | None = None) -> None:
    """A serving Deployment, Service or pod changed: reconcile its FineTuneJob, succeeded ones too (serving goes on
    after the job has finished), unless it failed."""
    rt.enqueue_unless(PLURAL, key[0], key[2], {Phase.FAILED.value}, context)


def data_source_changed(
    rt: Runtime, namespace: str, name: str, phase: str | None, context: contextvars.Context | None = None
) -> None:
    """A SyntheticDataJob changed (handlers/sdg.py): once it has finished, re-check the FineTuneJobs waiting for
    it."""
    if phase not in ("Succeeded", "Failed"):
        return
    for ft in rt.cache.parents(PLURAL, namespace, phases=(None, Phase.WAITING.value)):
        ref = ((ft.get("spec") or {}).get("data") or {}).get("syntheticDataJobRef") or {}
        if ref.get("name") == name:
            rt.enqueue(PLURAL, namespace, ft["metadata"]["name"], context)


def sample_progress(rt: Runtime, obj: dict[str, Any]) -> None:
    """Read rank 0's metrics and write status.progress, only when something moved (called by the sampler)."""
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    status = rt.current_status(PLURAL, obj)
    current = status.get("currentPhase")
    if not current:
        return
    kids = rt.cache.children((namespace, KIND.lower(), name), meta["uid"])
    attempts = phase_attempts(Owner(namespace, name, ""), current, kids.jobs)
    pod = kids.rank0(attempts[-1]) if attempts else None
    if pod is None or pod.ip is None:
        return
    text = progress.fetch(pod.ip, rt.settings.metrics_port)
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

    rt.write_progress(PLURAL, namespace, name, build)
