"""SyntheticDataJob handlers: thin. Load → decide (pure) → apply."""

from __future__ import annotations

import contextvars
from typing import Any

from labrador_operator import progress
from labrador_operator.api.sdg import PLURAL, Phase, SyntheticDataJobSpec
from labrador_operator.builders.sdg import KIND, Owner, generate_job_name
from labrador_operator.cache import CACHE, Key
from labrador_operator.handlers.apply import RECONCILERS, enqueue, reconcile, with_pod_creation_problems, write_progress
from labrador_operator.reconcile import sdg as decide
from labrador_operator.reconcile.observe import now_iso
from labrador_operator.settings import Settings

SETTINGS = Settings.from_env()
TERMINAL = {Phase.SUCCEEDED.value, Phase.FAILED.value}


def reconcile_sdg(body: dict[str, Any]) -> None:
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]

    def plan(spec: SyntheticDataJobSpec, status: dict[str, Any]) -> Any:
        kids = with_pod_creation_problems(PLURAL, ns, name, CACHE.children((ns, KIND.lower(), name), meta["uid"]))
        tax = CACHE.parent("taxonomies", ns, spec.taxonomy_ref.name)
        return decide.plan(
            owner=Owner(ns, name, meta["uid"]),
            spec=spec,
            generation=meta.get("generation"),
            status=status,
            children=kids,
            taxonomy=tax,
            settings=SETTINGS,
        )

    reconcile(KIND, PLURAL, body, SyntheticDataJobSpec, plan)


RECONCILERS[PLURAL] = reconcile_sdg


def on_child(key: Key, context: contextvars.Context | None = None) -> None:
    """A child Job or Pod changed (handlers/events.py): reconcile its parent unless it has finished."""
    record = CACHE.record(PLURAL, key[0], key[2])
    if record is not None and record.phase not in TERMINAL:
        enqueue(PLURAL, key[0], key[2], context)


def taxonomy_changed(namespace: str, name: str, context: contextvars.Context | None = None) -> None:
    """A Taxonomy changed (handlers/events.py): re-check the SyntheticDataJobs waiting for it."""
    for sdg in CACHE.parents(PLURAL, namespace, phases=(None, Phase.WAITING.value)):
        ref = ((sdg.get("spec") or {}).get("taxonomyRef") or {}).get("name")
        if ref == name:
            enqueue(PLURAL, namespace, sdg["metadata"]["name"], context)


def sample_progress(obj: dict[str, Any]) -> None:
    """Sum the running shards' metrics into status.progress, only when something moved (called by the sampler)."""
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    kids = CACHE.children((namespace, KIND.lower(), name), meta["uid"])
    job = generate_job_name(Owner(namespace, name, ""))
    shards = []
    for pod in kids.pods.values():
        if pod.job == job and pod.phase == "Running" and pod.ip:
            text = progress.fetch(pod.ip, SETTINGS.metrics_port)
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

    write_progress(PLURAL, namespace, name, build)
