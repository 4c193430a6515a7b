"""spec.serve: a promoted model gets its vLLM server (Deployment + Service), a rejected one never does; serving goes on
after the job succeeded (spec.serve added, changed or removed later), and the Serving condition says how it stands."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from labrador_operator.builders import serving as b
from labrador_operator.reconcile.observe import Children, DeploymentState, PodState, deployment_state
from labrador_operator.reconcile.serving import SPEC_HASH
from tests.unit.test_gate import MEASURED, _evaluated
from tests.unit.test_reconcile_finetune import OWNER, SETTINGS, run, spec


def _ending(serve: dict[str, Any] | None, forgetting: float = 0.03) -> Any:
    """The reconcile that ends a gated job (maxForgetting 0.1) with ``serve`` as spec.serve."""
    served = {} if serve is None else {"serve": serve}
    return _evaluated({**MEASURED, "forgetting_delta": forgetting}, {"maxForgetting": 0.1}, **served)


def cond(plan: Any, type_: str) -> dict[str, Any] | None:
    return next((c for c in plan.status["conditions"] if c["type"] == type_), None)


def test_a_promoted_model_gets_its_server_with_the_job() -> None:
    p = _ending({"servedModelName": "granite-tuned", "vllm": {"maxModelLen": 2048, "enforceEager": True}})
    assert p.status["phase"] == "Succeeded"
    kinds = {(m["kind"], m["metadata"]["name"]) for m in p.create}
    assert kinds == {("Deployment", "ft-serve"), ("Service", "ft-serve")}
    dep = next(m for m in p.create if m["kind"] == "Deployment")
    assert dep["metadata"]["ownerReferences"][0]["uid"] == "uid"
    pod = dep["spec"]["template"]["spec"]
    main = pod["containers"][0]
    assert main["command"][:2] == ["labrador-trainer", "serve"]
    assert main["command"][2:6] == ["--model", "/workspace/models/ns/ft", "--served-model-name", "granite-tuned"]
    assert "--enforce-eager" in main["command"] and "2048" in main["command"]
    assert pod["restartPolicy"] == "Always" and main["readinessProbe"]["httpGet"]["path"] == "/health"
    assert dep["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    svc = next(m for m in p.create if m["kind"] == "Service")
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert p.status["outputs"]["serving"] == {"url": "http://ft-serve.ns.svc:8000", "model": "granite-tuned",
                                              "readyReplicas": 0}  # fmt: skip
    serving = cond(p, "Serving")
    assert serving is not None and (serving["status"], serving["reason"]) == ("False", "ServerStarting")


def test_a_rejected_model_is_never_served() -> None:
    p = _ending({}, forgetting=0.9)
    assert p.status["phase"] == "Succeeded" and p.create == []
    assert "serving" not in p.status["outputs"]
    serving = cond(p, "Serving")
    assert serving is not None and (serving["status"], serving["reason"]) == ("False", "NotPromoted")


def test_no_serve_no_server_and_no_condition() -> None:
    p = _ending(None)
    assert p.create == [] and cond(p, "Serving") is None and "serving" not in p.status["outputs"]


def _finished(serve: dict[str, Any] | None, kids: Children, promoted: bool = True) -> Any:
    """A reconcile of a job that has succeeded already."""
    status = {
        "phase": "Succeeded",
        "observedGeneration": 2,
        "outputs": {"model": "models/ns/ft"},
        "conditions": [
            {"type": "Promoted", "status": "True" if promoted else "False", "reason": "GatePassed", "message": "",
             "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Ready", "status": "True", "reason": "Succeeded", "message": "",
             "lastTransitionTime": "2026-01-01T00:00:00Z"},
        ],
    }  # fmt: skip
    return run(spec(**({"serve": serve} if serve is not None else {})), kids, status=status)


def _deployment(serve: dict[str, Any], ready: int = 0, **kw: Any) -> DeploymentState:
    manifest = b.build_deployment(OWNER, spec(serve=serve), SETTINGS)
    from labrador_operator.reconcile.serving import spec_hash

    defaults: dict[str, Any] = {"name": "ft-serve", "role": "serve", "replicas": manifest["spec"]["replicas"],
                                "spec_hash": spec_hash(manifest), "owner_uid": "uid"}  # fmt: skip
    defaults.update(kw)
    return DeploymentState(ready=ready, **defaults)


def test_serving_is_reconciled_after_the_job_succeeded() -> None:
    added = _finished({}, Children())  # spec.serve added to a succeeded job
    assert {(m["kind"], m["metadata"]["name"]) for m in added.create} == {("Deployment", "ft-serve"),
                                                                          ("Service", "ft-serve")}  # fmt: skip
    assert added.status["observedGeneration"] == 3 and cond(added, "Ready") is not None  # the rest kept
    ready = _finished({}, Children(deployments={"ft-serve": _deployment({}, ready=1)}, services={"ft-serve"}))
    assert ready.create == [] and ready.patch == [] and ready.delete == []
    serving = cond(ready, "Serving")
    assert serving is not None and (serving["status"], serving["reason"]) == ("True", "ServerReady")
    assert serving["message"] == "model ft at http://ft-serve.ns.svc:8000/v1"
    assert ready.status["outputs"]["serving"]["readyReplicas"] == 1
    assert ready.status["outputs"]["model"] == "models/ns/ft"


def test_a_changed_serve_spec_patches_the_deployment() -> None:
    kids = Children(deployments={"ft-serve": _deployment({}, ready=1)}, services={"ft-serve"})
    scaled = _finished({"replicas": 2}, kids)
    assert scaled.patch == [("Deployment", "ft-serve", {"spec": {"replicas": 2}})]
    stopped = _finished({"replicas": 0}, kids)
    assert cond(stopped, "Serving")["reason"] == "ServerStopped"  # type: ignore[index]
    changed = _finished({"resources": {"memory": "16Gi"}}, kids)
    ((kind, name, patch),) = changed.patch
    assert (kind, name) == ("Deployment", "ft-serve")
    assert patch["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "16Gi"
    assert patch["metadata"]["annotations"][SPEC_HASH] != _deployment({}).spec_hash


def test_removing_serve_deletes_the_server_and_its_status() -> None:
    kids = Children(deployments={"ft-serve": _deployment({}, ready=1)}, services={"ft-serve", "ft-knowledge"})
    previous = _finished({}, kids)
    status = {**previous.status, "phase": "Succeeded"}
    removed = run(spec(), kids, status=status)
    assert sorted(removed.delete) == [("Deployment", "ft-serve"), ("Service", "ft-serve")]
    assert cond(removed, "Serving") is None and removed.status["outputs"]["serving"] is None  # merge patch: deleted
    status = {**removed.status, "outputs": {"model": "models/ns/ft"}}
    settled = run(spec(), Children(), status=status)
    assert settled.status == {} or "serving" not in settled.status.get("outputs", {})
    assert cond(removed, "Promoted") is not None


def test_compare_base_serves_the_base_model_beside_it() -> None:
    p = _finished({"compareBase": True}, Children())
    names = sorted((m["kind"], m["metadata"]["name"]) for m in p.create)
    assert names == [("Deployment", "ft-serve"), ("Deployment", "ft-serve-base"), ("Service", "ft-serve"),
                     ("Service", "ft-serve-base")]  # fmt: skip
    base = next(m for m in p.create if m["metadata"]["name"] == "ft-serve-base" and m["kind"] == "Deployment")
    assert base["spec"]["template"]["spec"]["containers"][0]["command"][2:6] == [
        "--model", "/models/base-model/x", "--served-model-name", "ft-base"]  # fmt: skip
    assert p.status["outputs"]["serving"]["baseUrl"] == "http://ft-serve-base.ns.svc:8000"
    base_state = _deployment({}, name="ft-serve-base", role="serve-base")
    off = _finished({}, Children(deployments={"ft-serve-base": base_state}, services={"ft-serve-base"}))
    assert sorted(off.delete) == [("Deployment", "ft-serve-base"), ("Service", "ft-serve-base")]


def test_a_failed_job_is_never_served() -> None:
    status = {"phase": "Failed", "conditions": []}
    p = run(spec(serve={}), Children(), status=status)
    assert p.create == [] and p.status == {}


def test_server_problems_become_the_serving_condition() -> None:
    stuck = PodState(name="ft-serve-abc", job="", index=0, phase="Pending", ip=None, problem="ImagePullBackOff",
                     problem_message="container main: back-off pulling image", role="serve")  # fmt: skip
    kids = Children(deployments={"ft-serve": _deployment({})}, services={"ft-serve"}, pods={stuck.name: stuck})
    serving = cond(_finished({}, kids), "Serving")
    assert serving is not None and (serving["status"], serving["reason"]) == ("False", "ImagePullBackOff")
    assert "ft-serve" in serving["message"] and "back-off" in serving["message"]
    stalled = Children(deployments={"ft-serve": _deployment({}, stalled="ReplicaSet has timed out")},
                       services={"ft-serve"})  # fmt: skip
    assert cond(_finished({}, stalled), "Serving")["reason"] == "ServerFailed"  # type: ignore[index]


def test_a_rejected_job_never_gets_a_server_later() -> None:
    p = _finished({}, Children(), promoted=False)
    assert p.create == [] and cond(p, "Serving")["reason"] == "NotPromoted"  # type: ignore[index]


def test_deployment_state_reads_the_controller_status() -> None:
    obj = {
        "metadata": {"name": "ft-serve", "generation": 3, "labels": {"labrador.dev/phase": "serve"},
                     "annotations": {SPEC_HASH: "abc"}, "ownerReferences": [{"uid": "u", "controller": True}]},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 2, "readyReplicas": 1,
                   "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                   "message": "ReplicaSet has timed out progressing."}]},
    }  # fmt: skip
    d = deployment_state(obj)
    assert (d.replicas, d.ready, d.current, d.spec_hash, d.owner_uid) == (2, 1, False, "abc", "u")
    assert d.stalled == "ReplicaSet has timed out progressing." and d.role == "serve"


def test_serve_spec_is_validated() -> None:
    with pytest.raises(ValidationError):
        spec(serve={"servedModelName": "bad name; rm -rf"})
    with pytest.raises(ValidationError):
        spec(serve={"replicas": -1})
