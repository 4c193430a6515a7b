"""Deciding a succeeded FineTuneJob's serving (spec.serve): which servers should exist, and what status says of them.
Pure.

A promoted model is served; a rejected one never is. The job stays Succeeded whatever the server does: serving is
reported by the ``Serving`` condition and ``status.outputs.serving``, and it is reconciled after the job finished
(spec.serve may be added, changed or removed later; the Deployment's events keep the status current).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from labrador_operator.api.finetune import ConditionType, FineTuneJobSpec, Reason, Serve
from labrador_operator.builders import serving as b
from labrador_operator.builders.finetune import Owner
from labrador_operator.constants import ANNOTATION_SERVE_HASH
from labrador_operator.reconcile.common import Condition, Conditions, Manifest
from labrador_operator.reconcile.observe import Children
from labrador_operator.settings import Settings

SPEC_HASH = ANNOTATION_SERVE_HASH


@dataclass(frozen=True)
class Serving:
    """What a reconcile does about serving: children to create, patch and delete, and what status says."""

    create: list[Manifest] = field(default_factory=list)
    patch: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    delete: list[tuple[str, str]] = field(default_factory=list)
    #: status.outputs.serving (None: absent)
    outputs: dict[str, Any] | None = None
    #: the Serving condition (None: absent, spec.serve is not set)
    condition: Condition | None = None

    @property
    def ready_message(self) -> str:
        url = (self.outputs or {}).get("url")
        ready = self.condition is not None and self.condition["status"] == "True"
        path = b.KSERVE_OPENAI_PATH if (self.outputs or {}).get("runtime") == "kserve" else "/v1"
        return f", served at {url}{path}" if url and ready else ""


def spec_hash(manifest: Manifest) -> str:
    """A Deployment's spec without its replicas (scaled by a patch of its own), hashed."""
    spec = {k: v for k, v in manifest["spec"].items() if k != "replicas"}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _hashed(manifest: Manifest) -> Manifest:
    manifest["metadata"]["annotations"][SPEC_HASH] = spec_hash(manifest)
    return manifest


def _existing(owner: Owner, children: Children) -> list[tuple[str, str]]:
    """Every serving child there is, as (kind, name)."""
    out = []
    for role in (b.TUNED, b.BASE):
        name = b.serve_name(owner, role)
        out += [("Deployment", name)] if name in children.deployments else []
        out += [("Service", name)] if name in children.services else []
        out += [("InferenceService", name)] if name in children.inference_services else []
    return out


def serving(
    owner: Owner,
    spec: FineTuneJobSpec,
    children: Children,
    *,
    promoted: bool,
    cond: Conditions,
    settings: Settings,
) -> Serving:
    """Serving of a succeeded job: none without spec.serve (what exists is deleted), none for a rejected model,
    else the servers spec.serve asks for, kept in line with it."""
    serve = spec.serve
    if serve is None:
        return Serving(delete=_existing(owner, children))
    if not promoted:
        not_served = cond(ConditionType.SERVING, False, Reason.NOT_PROMOTED, "the quality gate rejected the model")
        return Serving(delete=_existing(owner, children), condition=not_served)
    if serve.runtime == "kserve":
        return kserve_serving(owner, spec, children, cond=cond, settings=settings)
    wanted_roles = b.roles(serve)
    create: list[Manifest] = []
    patch: list[tuple[str, str, dict[str, Any]]] = []
    for role in wanted_roles:
        name = b.serve_name(owner, role)
        desired = _hashed(b.build_deployment(owner, spec, settings, role))
        current = children.deployments.get(name)
        if current is None:
            create.append(desired)
        elif current.spec_hash != desired["metadata"]["annotations"][SPEC_HASH]:
            annotations = {SPEC_HASH: desired["metadata"]["annotations"][SPEC_HASH]}
            patch.append(("Deployment", name, {"metadata": {"annotations": annotations}, "spec": desired["spec"]}))
        elif current.replicas != serve.replicas:
            patch.append(("Deployment", name, {"spec": {"replicas": serve.replicas}}))
        if name not in children.services:
            create.append(b.build_service(owner, role))
    wanted = {(k, b.serve_name(owner, r)) for r in wanted_roles for k in ("Deployment", "Service")}
    unwanted = [child for child in _existing(owner, children) if child not in wanted]
    outputs: dict[str, Any] = {"url": b.url(owner), "model": b.model_name(owner, serve)}
    if serve.compare_base:
        outputs |= {"baseUrl": b.url(owner, b.BASE), "baseModel": b.model_name(owner, serve, b.BASE)}
    tuned = children.deployments.get(b.serve_name(owner))
    outputs["readyReplicas"] = tuned.ready if tuned else 0
    return Serving(create, patch, unwanted, outputs, serving_condition(owner, spec, children, cond))


def serving_condition(owner: Owner, spec: FineTuneJobSpec, children: Children, cond: Conditions) -> Condition:
    """True once every server has a ready pod; else why not, in the words of the Deployment or of its pods."""
    serve = spec.serve
    assert serve is not None
    if serve.replicas == 0:
        return cond(ConditionType.SERVING, False, Reason.SERVER_STOPPED, "spec.serve.replicas is 0")
    waiting = []
    for role in b.roles(serve):
        name = b.serve_name(owner, role)
        d = children.deployments.get(name)
        if d is not None and d.stalled:
            return cond(ConditionType.SERVING, False, Reason.SERVER_FAILED, f"Deployment {name}: {d.stalled}")
        problem = children.serve_problem(role)
        if problem is not None:
            return cond(ConditionType.SERVING, False, problem[0], f"model server {name}: {problem[1]}")
        if d is None or d.ready < 1 or not d.current:
            waiting.append(name)
    if waiting:
        message = f"waiting for {', '.join(waiting)} to load the model and answer /health"
        return cond(ConditionType.SERVING, False, Reason.SERVER_STARTING, message)
    message = f"model {b.model_name(owner, serve)} at {b.url(owner)}/v1"
    if serve.compare_base:
        message += f"; base model {b.model_name(owner, serve, b.BASE)} at {b.url(owner, b.BASE)}/v1"
    return cond(ConditionType.SERVING, True, Reason.SERVER_READY, message)


def kserve_serving(
    owner: Owner, spec: FineTuneJobSpec, children: Children, *, cond: Conditions, settings: Settings
) -> Serving:
    """spec.serve.runtime kserve: one InferenceService instead of the Deployments and Services (those that exist
    go), kept in line with spec.serve by its spec hash, as the Deployment is; nothing is created where the operator
    does not manage InferenceServices or the cluster has no KServe — the Serving condition says which."""
    serve = spec.serve
    assert serve is not None
    name = b.serve_name(owner)
    stale = [child for child in _existing(owner, children) if child != ("InferenceService", name)]
    if not settings.kserve:
        message = (
            "spec.serve.runtime is kserve, but this operator does not manage KServe InferenceServices: install KServe "
            "and set the chart's kserve.enabled=true (or use runtime deployment)"
        )
        return Serving(delete=stale, condition=cond(ConditionType.SERVING, False, Reason.KSERVE_NOT_ENABLED, message))
    if children.kserve_installed is False:
        message = (
            f"spec.serve.runtime is kserve, but the cluster serves no {b.KSERVE_API} InferenceService API: install "
            "KServe (its CRDs and controller), or use runtime deployment"
        )
        return Serving(delete=stale, condition=cond(ConditionType.SERVING, False, Reason.KSERVE_NOT_INSTALLED, message))
    desired = _hashed(b.build_inference_service(owner, spec, settings))
    digest = desired["metadata"]["annotations"][SPEC_HASH]
    current = children.inference_services.get(name)
    create: list[Manifest] = []
    patch: list[tuple[str, str, dict[str, Any]]] = []
    if current is None:
        create.append(desired)
    elif current.spec_hash != digest:
        hashed = {"metadata": {"annotations": {SPEC_HASH: digest}}, "spec": desired["spec"]}
        patch.append(("InferenceService", name, hashed))
    outputs: dict[str, Any] = {"model": b.model_name(owner, serve), "runtime": "kserve"}
    if current is not None and current.url:
        outputs["url"] = current.url
    return Serving(create, patch, stale, outputs, kserve_condition(owner, serve, children, cond))


def kserve_condition(owner: Owner, serve: Serve, children: Children, cond: Conditions) -> Condition:
    """True once KServe says the InferenceService is Ready; else why not, in KServe's words or its pods'."""
    name = b.serve_name(owner)
    isvc = children.inference_services.get(name)
    if isvc is not None and isvc.failed:
        return cond(ConditionType.SERVING, False, Reason.SERVER_FAILED, f"InferenceService {name}: {isvc.failed}")
    problem = children.serve_problem(b.TUNED)
    if problem is not None:
        return cond(ConditionType.SERVING, False, problem[0], f"model server {name}: {problem[1]}")
    if isvc is not None and isvc.current and isvc.ready == "True":
        where = f" at {isvc.url}{b.KSERVE_OPENAI_PATH}" if isvc.url else ""
        return cond(ConditionType.SERVING, True, Reason.SERVER_READY, f"model {b.model_name(owner, serve)}{where}")
    message = f"waiting for KServe to make InferenceService {name} ready"
    if isvc is not None and isvc.current and isvc.ready == "False":
        said = ": ".join(x for x in (isvc.reason, isvc.message) if x)
        message = f"InferenceService {name} is not ready" + (f": {said}" if said else "")
    return cond(ConditionType.SERVING, False, Reason.SERVER_STARTING, message)


def terminal_status(status: dict[str, Any], generation: int | None, result: Serving) -> dict[str, Any]:
    """The status fields of a finished job after a serving reconcile: outputs.serving and the Serving condition
    replaced (or dropped), every other condition and output as they were."""
    before = status.get("outputs") or {}
    outputs = {k: v for k, v in before.items() if k != "serving"}
    if result.outputs is not None:
        outputs["serving"] = result.outputs
    elif "serving" in before:
        outputs["serving"] = None  # status is merge-patched: a key only goes when it is written as null
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != ConditionType.SERVING]
    if result.condition is not None:
        conditions.append(result.condition)
    return {"observedGeneration": generation, "outputs": outputs, "conditions": conditions}
