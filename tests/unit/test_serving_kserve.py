"""spec.serve.runtime kserve: the promoted model is served by a KServe InferenceService (built pure, here against the
fields of KServe's real v1beta1 schema), not by the Deployment and Service; the Serving condition and
status.outputs.serving come from the InferenceService's status, and a cluster or operator without KServe says so on
the condition."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from labrador_operator.builders import serving as b
from labrador_operator.reconcile import finetune as decide
from labrador_operator.reconcile.observe import Children, InferenceServiceState, PodState, inference_service_state
from labrador_operator.reconcile.serving import SPEC_HASH, spec_hash
from labrador_operator.settings import Settings
from tests.unit.test_reconcile_finetune import OWNER, spec
from tests.unit.test_serving import _deployment, cond

KSERVE = Settings(kserve=True)


def _finished(serve: dict[str, Any] | None, kids: Children, settings: Settings = KSERVE) -> Any:
    """A reconcile of a promoted job that has succeeded already, the cluster serving KServe's API."""
    status = {
        "phase": "Succeeded",
        "observedGeneration": 2,
        "outputs": {"model": "models/ns/ft"},
        "conditions": [
            {"type": "Promoted", "status": "True", "reason": "GatePassed", "message": "",
             "lastTransitionTime": "2026-01-01T00:00:00Z"},
        ],
    }  # fmt: skip
    if kids.kserve_installed is None:
        kids.kserve_installed = True
    s = spec(**({"serve": serve} if serve is not None else {}))
    return decide.plan(owner=OWNER, spec=s, generation=3, status=status, children=kids,
                       dep=decide.explicit_data(s) or decide.DataDependency(), settings=settings)  # fmt: skip


def _isvc(serve: dict[str, Any], **kw: Any) -> InferenceServiceState:
    manifest = b.build_inference_service(OWNER, spec(serve={"runtime": "kserve", **serve}), KSERVE)
    defaults: dict[str, Any] = {"name": "ft-serve", "role": "serve", "owner_uid": "uid",
                                "spec_hash": spec_hash(manifest)}  # fmt: skip
    return InferenceServiceState(**{**defaults, **kw})


def test_the_inference_service_serves_the_output_model_from_the_workspace_claim() -> None:
    serve = {"runtime": "kserve", "replicas": 2, "servedModelName": "granite-tuned",
             "vllm": {"maxModelLen": 2048, "dtype": "bfloat16", "enforceEager": True},
             "resources": {"cpu": "4", "memory": "24Gi", "gpus": 1, "nodeSelector": {"pool": "gpu"},
                           "podMetadata": {"labels": {"team": "a"}}}}  # fmt: skip
    s = spec(serve=serve, workspace={"claimName": "ws", "subPath": "team-a"})
    isvc = b.build_inference_service(OWNER, s, KSERVE)
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    meta = isvc["metadata"]
    assert meta["name"] == "ft-serve" and meta["namespace"] == "ns"
    assert meta["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert meta["ownerReferences"] == [{"apiVersion": "labrador.dev/v1alpha1", "kind": "FineTuneJob", "name": "ft",
                                        "uid": "uid", "controller": True, "blockOwnerDeletion": True}]  # fmt: skip
    assert meta["labels"] == {
        "labrador.dev/kind": "finetunejob",
        "labrador.dev/name": "ft",
        "app.kubernetes.io/managed-by": "labrador-operator",
        "labrador.dev/phase": "serve",
    }
    predictor = isvc["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 2)
    assert predictor["nodeSelector"] == {"pool": "gpu"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in predictor["tolerations"]
    assert predictor["labels"] == {"team": "a", **meta["labels"]}  # its pods: the operator sees their problems
    model = predictor["model"]
    assert model["modelFormat"] == {"name": "huggingface"}
    # the directory the Deployment path serves (/workspace/<subPath>/models/ns/ft), on the same claim
    assert model["storageUri"] == "pvc://ws/team-a/models/ns/ft"
    assert model["args"] == [
        "--model_name=granite-tuned",
        "--max-model-len=2048",
        "--dtype=bfloat16",
        "--gpu-memory-utilization=0.9",
        "--tensor-parallel-size=1",
        "--enforce-eager",
    ]
    assert model["resources"] == {"requests": {"cpu": "4", "memory": "24Gi", "nvidia.com/gpu": "1"},
                                  "limits": {"memory": "24Gi", "nvidia.com/gpu": "1"}}  # fmt: skip
    plain = b.build_inference_service(OWNER, spec(serve={"runtime": "kserve"}), KSERVE)["spec"]["predictor"]
    assert plain["model"]["storageUri"] == "pvc://labrador-workspace/models/ns/ft"
    assert plain["model"]["args"] == ["--model_name=ft"] and "tolerations" not in plain


def test_the_inference_service_fits_kserves_own_schema() -> None:
    """Every field the builder writes is one KServe v0.16.0's InferenceService schema has (the subset of it that
    matters here, written out: the unit tier has no cluster; the integration tier applies it to the real CRD)."""
    isvc = b.build_inference_service(OWNER, spec(serve={"runtime": "kserve", "vllm": {}, "resources": {"gpus": 1}}),
                                     KSERVE)  # fmt: skip
    predictor_fields = {"minReplicas", "maxReplicas", "labels", "annotations", "model", "tolerations", "nodeSelector",
                        "priorityClassName"}  # fmt: skip
    model_fields = {"modelFormat", "storageUri", "args", "resources"}
    assert set(isvc["spec"]) == {"predictor"}
    assert set(isvc["spec"]["predictor"]) <= predictor_fields
    assert set(isvc["spec"]["predictor"]["model"]) <= model_fields


def test_a_promoted_job_gets_its_inference_service_and_no_deployment() -> None:
    p = _finished({"runtime": "kserve"}, Children())
    assert [(m["kind"], m["metadata"]["name"]) for m in p.create] == [("InferenceService", "ft-serve")]
    assert p.create[0]["metadata"]["annotations"][SPEC_HASH] == _isvc({}).spec_hash
    assert p.status["outputs"]["serving"] == {"model": "ft", "runtime": "kserve"}  # no URL before KServe says one
    serving = cond(p, "Serving")
    assert serving is not None and (serving["status"], serving["reason"]) == ("False", "ServerStarting")
    assert "waiting for KServe" in serving["message"]


def test_ready_and_url_come_from_the_inference_service_status() -> None:
    url = "http://ft-serve-predictor.ns.svc.cluster.local"
    kids = Children(inference_services={"ft-serve": _isvc({}, ready="True", url=url)})
    p = _finished({"runtime": "kserve"}, kids)
    assert p.create == [] and p.patch == [] and p.delete == []
    serving = cond(p, "Serving")
    assert serving is not None and (serving["status"], serving["reason"]) == ("True", "ServerReady")
    assert serving["message"] == f"model ft at {url}/openai/v1"
    assert p.status["outputs"]["serving"] == {"url": url, "model": "ft", "runtime": "kserve"}
    # not ready: KServe's reason and message, as it said them
    said = _isvc({}, ready="False", reason="PredictorConfigurationReady", message="revision missing", url=url)
    waiting = cond(_finished({"runtime": "kserve"}, Children(inference_services={"ft-serve": said})), "Serving")
    assert waiting is not None and (waiting["status"], waiting["reason"]) == ("False", "ServerStarting")
    assert waiting["message"] == "InferenceService ft-serve is not ready: PredictorConfigurationReady: revision missing"
    # a status of an older spec is no answer yet
    stale = _isvc({}, ready="True", url=url, current=False)
    assert cond(_finished({"runtime": "kserve"}, Children(inference_services={"ft-serve": stale})),
                "Serving")["reason"] == "ServerStarting"  # type: ignore[index]  # fmt: skip


def test_kserve_and_pod_failures_become_the_serving_condition() -> None:
    failed = _isvc({}, ready="False", failed="ModelLoadFailed: no config.json in /mnt/models")
    serving = cond(_finished({"runtime": "kserve"}, Children(inference_services={"ft-serve": failed})), "Serving")
    assert serving is not None and (serving["status"], serving["reason"]) == ("False", "ServerFailed")
    assert serving["message"] == "InferenceService ft-serve: ModelLoadFailed: no config.json in /mnt/models"
    stuck = PodState(name="ft-serve-predictor-abc", job="", index=0, phase="Pending", ip=None,
                     problem="Unschedulable", problem_message="0/3 nodes: no GPU", role="serve")  # fmt: skip
    kids = Children(inference_services={"ft-serve": _isvc({})}, pods={stuck.name: stuck})
    assert cond(_finished({"runtime": "kserve"}, kids), "Serving")["reason"] == "Unschedulable"  # type: ignore[index]


def test_a_changed_serve_spec_patches_the_inference_service() -> None:
    kids = Children(inference_services={"ft-serve": _isvc({}, ready="True", url="http://x")})
    p = _finished({"runtime": "kserve", "replicas": 3}, kids)
    ((kind, name, patch),) = p.patch
    assert (kind, name) == ("InferenceService", "ft-serve")
    assert patch["spec"]["predictor"]["minReplicas"] == 3 and patch["spec"]["predictor"]["maxReplicas"] == 3
    assert patch["metadata"] == {"annotations": {SPEC_HASH: _isvc({"replicas": 3}).spec_hash}}


def test_switching_runtimes_replaces_one_server_by_the_other() -> None:
    deployed = Children(deployments={"ft-serve": _deployment({}, ready=1)}, services={"ft-serve"})
    to_kserve = _finished({"runtime": "kserve"}, deployed)
    assert sorted(to_kserve.delete) == [("Deployment", "ft-serve"), ("Service", "ft-serve")]
    assert [m["kind"] for m in to_kserve.create] == ["InferenceService"]
    served = Children(inference_services={"ft-serve": _isvc({}, ready="True")})
    back = _finished({}, served)
    assert back.delete == [("InferenceService", "ft-serve")]
    assert sorted(m["kind"] for m in back.create) == ["Deployment", "Service"]
    removed = _finished(None, Children(inference_services={"ft-serve": _isvc({})}))
    assert removed.delete == [("InferenceService", "ft-serve")]


def test_without_kserve_the_condition_says_what_to_do() -> None:
    off = _finished({"runtime": "kserve"}, Children(), settings=Settings())
    serving = cond(off, "Serving")
    assert off.create == [] and serving is not None
    assert (serving["status"], serving["reason"]) == ("False", "KServeNotEnabled")
    assert "kserve.enabled=true" in serving["message"]
    missing = _finished({"runtime": "kserve"}, Children(kserve_installed=False))
    serving = cond(missing, "Serving")
    assert missing.create == [] and serving is not None
    assert (serving["status"], serving["reason"]) == ("False", "KServeNotInstalled")
    assert "install KServe" in serving["message"]
    assert "serving" not in missing.status["outputs"]


def test_inference_service_state_reads_kserves_status() -> None:
    obj = {
        "metadata": {"name": "ft-serve", "generation": 2, "labels": {"labrador.dev/phase": "serve"},
                     "annotations": {SPEC_HASH: "abc"}, "ownerReferences": [{"uid": "u", "controller": True}]},
        "status": {"observedGeneration": 2, "url": "http://ft-serve.ns.example.com",
                   "address": {"url": "http://ft-serve-predictor.ns.svc.cluster.local"},
                   "conditions": [{"type": "PredictorReady", "status": "True"},
                                  {"type": "Ready", "status": "False", "reason": "RevisionFailed", "message": "m"}],
                   "modelStatus": {"transitionStatus": "BlockedByFailedLoad",
                                   "lastFailureInfo": {"reason": "ModelLoadFailed", "message": "bad weights"}}},
    }  # fmt: skip
    s = inference_service_state(obj)
    assert (s.name, s.role, s.ready, s.reason, s.message) == ("ft-serve", "serve", "False", "RevisionFailed", "m")
    assert (s.url, s.current, s.owner_uid, s.spec_hash) == ("http://ft-serve.ns.example.com", True, "u", "abc")
    assert s.failed == "ModelLoadFailed: bad weights"
    address_only = inference_service_state({"metadata": {"generation": 3}, "status": {
        "observedGeneration": 2, "address": {"url": "http://p.ns.svc"}}})  # fmt: skip
    assert (address_only.url, address_only.current, address_only.ready) == ("http://p.ns.svc", False, "")
    assert inference_service_state({"metadata": {"name": "x"}}).current  # no status at all: nothing stale


def test_kserve_serve_spec_is_validated() -> None:
    with pytest.raises(ValidationError, match="replicas >= 1"):
        spec(serve={"runtime": "kserve", "replicas": 0})
    with pytest.raises(ValidationError, match="compareBase"):
        spec(serve={"runtime": "kserve", "compareBase": True})
    with pytest.raises(ValidationError):
        spec(serve={"runtime": "seldon"})
    assert spec(serve={}).serve.runtime == "deployment"  # type: ignore[union-attr]


def test_settings_read_kserve_from_the_environment() -> None:
    assert Settings.from_env({"LABRADOR_KSERVE": "true"}).kserve
    assert not Settings.from_env({}).kserve and not Settings.from_env({"LABRADOR_KSERVE": "false"}).kserve
