"""SyntheticDataJob handlers: thin. Load → decide (pure) → apply."""

from __future__ import annotations

from typing import Any

import kopf

from labrador_operator import progress
from labrador_operator.api.sdg import PLURAL, Phase, SyntheticDataJobSpec
from labrador_operator.builders.sdg import KIND, Owner, generate_job_name
from labrador_operator.cache import CACHE, Key
from labrador_operator.constants import API_GROUP, API_VERSION
from labrador_operator.handlers.apply import current_status, forget, reconcile, settled, write_status
from labrador_operator.reconcile import sdg as decide
from labrador_operator.reconcile.observe import now_iso
from labrador_operator.settings import Settings

SETTINGS = Settings.from_env()
TERMINAL = {Phase.SUCCEEDED.value, Phase.FAILED.value}


def reconcile_sdg(body: dict[str, Any]) -> None:
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]

    def plan(spec: SyntheticDataJobSpec, status: dict[str, Any]) -> Any:
        kids = CACHE.children((ns, KIND.lower(), name))
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


@kopf.on.event(API_GROUP, API_VERSION, PLURAL)
def on_sdg(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    CACHE.observe_parent(PLURAL, event.get("type"), dict(body))
    settled(PLURAL, dict(body))
    if event.get("type") == "DELETED":
        forget(PLURAL, body.metadata.namespace or "", body.metadata.name or "")
        return
    reconcile_sdg(dict(body))


def on_child(key: Key) -> None:
    """A child Job or Pod changed (handlers/children.py): reconcile its parent unless it has finished."""
    parent = CACHE.parent(PLURAL, key[0], key[2])
    if parent is not None and (parent.get("status") or {}).get("phase") not in TERMINAL:
        reconcile_sdg(parent)


@kopf.on.event(API_GROUP, API_VERSION, "taxonomies")
def on_taxonomy_change(event: dict[str, Any], body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    """A Taxonomy changed phase: re-check the SyntheticDataJobs waiting for it."""
    CACHE.observe_parent("taxonomies", event.get("type"), dict(body))
    for sdg in CACHE.parents(PLURAL, namespace):
        ref = ((sdg.get("spec") or {}).get("taxonomyRef") or {}).get("name")
        if ref == name and (sdg.get("status") or {}).get("phase") in (None, Phase.WAITING.value):
            reconcile_sdg(sdg)


def sample_progress(obj: dict[str, Any]) -> None:
    """Sum the running shards' metrics into status.progress, only when something moved (called by the sampler)."""
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    status = current_status(PLURAL, obj)
    kids = CACHE.children((namespace, KIND.lower(), name))
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
    target = sample.get("targetSamples")
    percent = 100.0 * sample.get("samples", 0) / target if target else None
    new = progress.finish(sample, percent, now_iso())
    if progress.changed(status.get("progress"), new):
        write_status(PLURAL, namespace, name, {"progress": new})
