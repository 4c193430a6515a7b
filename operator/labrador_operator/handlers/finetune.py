"""FineTuneJob handlers: thin. Load → decide (pure) → apply."""

from __future__ import annotations

import logging
import time
from typing import Any

import kopf
from pydantic import ValidationError

from labrador_operator import metrics
from labrador_operator.api.finetune import PLURAL as FT_PLURAL
from labrador_operator.api.finetune import ConditionType, FineTuneJobSpec, Phase
from labrador_operator.builders.finetune import KIND, Owner
from labrador_operator.constants import LABEL_KIND
from labrador_operator.handlers import indexes
from labrador_operator.handlers.apply import apply, forget
from labrador_operator.reconcile import finetune as decide
from labrador_operator.reconcile.observe import parent_key
from labrador_operator.reconcile.plan import Plan, condition
from labrador_operator.settings import Settings

log = logging.getLogger("labrador.finetune")
SETTINGS = Settings.from_env()
TERMINAL = {Phase.SUCCEEDED.value, Phase.FAILED.value}


def reconcile(body: dict[str, Any], idx: dict[str, kopf.Index[Any, Any]]) -> None:
    meta = body["metadata"]
    ns, name = meta["namespace"], meta["name"]
    if meta.get("deletionTimestamp"):
        return
    t0 = time.perf_counter()
    result = "ok"
    try:
        try:
            spec = FineTuneJobSpec.model_validate(body.get("spec") or {})
        except ValidationError as e:
            msg = f"spec is invalid: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}"
            gen = meta.get("generation")
            prev = (body.get("status") or {}).get("conditions")
            bad = Plan(
                status={
                    "phase": Phase.FAILED.value,
                    "observedGeneration": gen,
                    "conditions": [
                        condition(ConditionType.FAILED, True, "InvalidSpec", msg, gen, prev),
                        condition(ConditionType.READY, False, "InvalidSpec", msg, gen, prev),
                    ],
                }
            )
            apply(bad, kind=KIND, plural=FT_PLURAL, body=body)
            result = "invalid"
            return
        owner = Owner(ns, name, meta["uid"])
        key = (ns, KIND.lower(), name)
        kids = indexes.children(
            key, idx["labrador_jobs"], idx["labrador_pods"], idx["labrador_configmaps"], idx["labrador_services"]
        )
        sdg = None
        if spec.data.synthetic_data_job_ref:
            sdg = indexes.one(idx["syntheticdatajobs_by_name"], (ns, spec.data.synthetic_data_job_ref.name))
        dep = decide.data_from_sdg(spec, sdg)
        plan = decide.plan(
            owner=owner,
            spec=spec,
            generation=meta.get("generation"),
            status=body.get("status"),
            children=kids,
            dep=dep,
            settings=SETTINGS,
        )
        apply(plan, kind=KIND, plural=FT_PLURAL, body=body)
    except Exception:
        result = "error"
        raise
    finally:
        metrics.RECONCILES.labels(KIND, result).inc()
        metrics.RECONCILE_SECONDS.labels(KIND).observe(time.perf_counter() - t0)


def _indexes(kw: dict[str, Any]) -> dict[str, kopf.Index[Any, Any]]:
    return {k: v for k, v in kw.items() if isinstance(v, kopf.Index)}


@kopf.on.event("labrador.dev", "v1alpha1", "finetunejobs")
def on_finetunejob(event: dict[str, Any], body: kopf.Body, **kw: Any) -> None:
    if event.get("type") == "DELETED":
        forget(FT_PLURAL, body.metadata.namespace or "", body.metadata.name or "")
        return
    reconcile(dict(body), _indexes(kw))


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_KIND: "finetunejob"})
@kopf.on.event("", "v1", "pods", labels={LABEL_KIND: "finetunejob"})
def on_child(body: kopf.Body, finetunejobs_by_name: kopf.Index[Any, Any], **kw: Any) -> None:
    key = decide_parent(dict(body))
    if key is None:
        return
    parent = indexes.one(finetunejobs_by_name, key)
    if parent is not None and (parent.get("status") or {}).get("phase") not in TERMINAL:
        reconcile(parent, {**_indexes(kw), "finetunejobs_by_name": finetunejobs_by_name})


@kopf.on.event("labrador.dev", "v1alpha1", "syntheticdatajobs")
def on_data_source(
    body: kopf.Body, namespace: str, name: str, finetunejobs_by_name: kopf.Index[Any, Any], **kw: Any
) -> None:
    """A SyntheticDataJob changed: re-check the FineTuneJobs waiting for it."""
    if (body.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
        return
    for (ns, _), store in list(finetunejobs_by_name.items()):
        if ns != namespace:
            continue
        for ft in store:
            ref = ((ft.get("spec") or {}).get("data") or {}).get("syntheticDataJobRef") or {}
            if ref.get("name") == name and (ft.get("status") or {}).get("phase") in (None, Phase.WAITING.value):
                reconcile(ft, {**_indexes(kw), "finetunejobs_by_name": finetunejobs_by_name})


def decide_parent(child: dict[str, Any]) -> tuple[str, str] | None:
    key = parent_key(child)
    return (key[0], key[2]) if key and key[1] == KIND.lower() else None
