"""SyntheticDataJob in the controller: load from the cache → decide (reconcile/sdg.py, pure) → apply; what a change
of a child or of a Taxonomy names for a reconcile; the shards' progress for the sampler."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

from labrador_operator.api.sdg import PLURAL, Phase, SyntheticDataJobSpec
from labrador_operator.builders.sdg import KIND, Owner, generate_job_name
from labrador_operator.controller import progress
from labrador_operator.controller.cache import Key
from labrador_operator.reconcile import sdg as decide
from labrador_operator.reconcile.observe import now_iso

if TYPE_CHECKING:
    from labrador_operator.controller.runtime import Runtime

TERMINAL = {Phase.SUCCEEDED.value, Phase.FAILED.value}


def reconcile_sdg(rt: Runtime, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]

    def plan(spec: SyntheticDataJobSpec, status: dict[str, Any]) -> Any:
        kids = rt.with_pod_creation_problems(PLURAL, ns, name, rt.cache.children((ns, KIND.lower(), name), meta["uid"]))
        tax = rt.cache.parent("taxonomies", ns, spec.taxonomy_ref.name)
        return decide.plan(
            owner=Owner(ns, name, meta["uid"]),
            spec=spec,
            generation=meta.get("generation"),
            status=status,
            children=kids,
            taxonomy=tax,
            settings=rt.settings,
        )

    rt.reconcile(KIND, PLURAL, body, SyntheticDataJobSpec, plan)


def on_child(rt: Runtime, key: Key, context: contextvars.Context | None = None) -> None:
    """A child Job or Pod changed (handlers/children.py): reconcile its parent unless it has finished."""
    rt.enqueue_unless(PLURAL, key[0], key[2], TERMINAL, context)


def taxonomy_changed(rt: Runtime, namespace: str, name: str, context: contextvars.Context | None = None) -> None:
    """A Taxonomy changed (handlers/taxonomy.py): re-check the SyntheticDataJobs waiting for it."""
    for sdg in rt.cache.parents(PLURAL, namespace, phases=(None, Phase.WAITING.value)):
        ref = ((sdg.get("spec") or {}).get("taxonomyRef") or {}).get("name")
        if ref == name:
            rt.enqueue(PLURAL, namespace, sdg["metadata"]["name"], context)


def sample_progress(rt: Runtime, obj: dict[str, Any]) -> None:
    """Sum the running shards' metrics into status.progress, only when something moved (called by the sampler)."""
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    kids = rt.cache.children((namespace, KIND.lower(), name), meta["uid"])
    job = generate_job_name(Owner(namespace, name, ""))
    shards = []
    for pod in kids.pods.values():
        if pod.job == job and pod.phase == "Running" and pod.ip:
            text = progress.fetch(pod.ip, rt.settings.metrics_port)
            if text is not None:
                shards.append(progress.parse(text, progress.SDG))
    sample = progress.sum_shards(shards)
    if not sample:
        return
    gen = kids.jobs.get(job)
    total = int(((obj.get("spec") or {}).get("parallelism")) or 1)
    percent = progress.sdg_percent(shards, total, gen.succeeded if gen is not None else 0)

    def build(now: dict[str, Any]) -> dict[str, Any]:
        return progress.finish(sample, percent, now_iso(), now.get("progress"))

    rt.write_progress(PLURAL, namespace, name, build)
