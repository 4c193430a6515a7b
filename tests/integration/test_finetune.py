"""FineTuneJob reconciliation against the real control plane: children, phase chaining, status, GC."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

from tests.conftest import load_example
from tests.integration.conftest import Kube, one_phase_job, wait_for


def _ft(name: str, **spec: Any) -> dict[str, Any]:
    obj = copy.deepcopy(load_example("finetunejob"))
    obj["metadata"] = {"name": name}
    obj["spec"]["data"] = {"knowledgePath": "data/knowledge.jsonl", "skillsPath": "data/skills.jsonl"}
    obj["spec"]["resources"] = {"nodes": 2, "gpusPerNode": 1, "cpu": "1", "memory": "1Gi"}
    obj["spec"]["evaluation"] = {"enabled": False}
    obj["spec"].update(spec)
    return obj


def _status(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    return kube.get("finetunejob", name, ns).get("status") or {}


def _conds(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions", [])}


def test_two_phases_run_in_order_and_succeed(installed: Kube, operator: Any, namespace: str, workspace: str) -> None:
    installed.apply(_ft("chain"), namespace)
    status = wait_for(
        lambda: (s := _status(installed, namespace, "chain")).get("phase") == "Succeeded" and s,
        timeout=90,
        what="FineTuneJob Succeeded",
    )
    assert [p["name"] for p in status["phases"]] == ["knowledge", "skills"]
    assert all(p["state"] == "Succeeded" for p in status["phases"])
    assert _conds(status)["Ready"] == ("True", "Succeeded")
    assert _conds(status)["DataReady"][0] == "True"
    assert status["outputs"]["model"] == f"models/{namespace}/chain"
    assert status["observedGeneration"] == 1

    jobs = _list(installed, "jobs", namespace)
    by_name = {j["metadata"]["name"]: j for j in jobs}
    assert set(by_name) == {"chain-knowledge", "chain-skills"}
    k, s = by_name["chain-knowledge"], by_name["chain-skills"]
    # phase 2 was created after phase 1 completed
    assert s["metadata"]["creationTimestamp"] >= k["status"]["completionTime"]
    for j in jobs:
        assert j["spec"]["completionMode"] == "Indexed" and j["spec"]["completions"] == 2
        assert j["metadata"]["ownerReferences"][0]["kind"] == "FineTuneJob"
        argv = j["spec"]["template"]["spec"]["containers"][0]["command"]
        assert argv[:2] == ["labrador-trainer", "train"] and "--node-rank=$(JOB_COMPLETION_INDEX)" in argv
        assert f"--master-addr={j['metadata']['name']}-0.{j['metadata']['name']}" in argv
    services = {s["metadata"]["name"] for s in _list(installed, "services", namespace)}
    assert services == {"chain-knowledge", "chain-skills"}
    # no ConfigMap: each Job carries its run config; phase 2 starts from phase 1's final checkpoint and the last
    # phase exports the model
    assert not {c["metadata"]["name"] for c in _list(installed, "configmaps", namespace)} & {"chain-config"}
    skills = next(j for j in jobs if j["metadata"]["name"] == "chain-skills")["spec"]["template"]
    config = skills["metadata"]["annotations"]["config.labrador.dev/skills.json"]
    assert f"runs/{namespace}/chain/knowledge/phases/knowledge/final" in config
    assert f"models/{namespace}/chain" in config

    # deleting the parent garbage-collects every child (real controller-manager GC)
    installed.kubectl("delete", "finetunejob", "chain", "-n", namespace)
    wait_for(
        lambda: not _list(installed, "jobs", namespace) and not _list(installed, "services", namespace),
        timeout=60,
        what="children garbage-collected",
    )


def test_waits_for_its_synthetic_data_job(installed: Kube, operator: Any, namespace: str, workspace: str) -> None:
    obj = _ft("waiting")
    obj["spec"]["data"] = {"syntheticDataJobRef": {"name": "missing"}}
    installed.apply(obj, namespace)
    status = wait_for(
        lambda: (s := _status(installed, namespace, "waiting")).get("phase") == "Waiting" and s,
        timeout=30,
        what="Waiting",
    )
    assert _conds(status)["DataReady"] == ("False", "SyntheticDataJobNotFound")
    assert not _list(installed, "jobs", namespace)


def test_user_error_fails_fast_with_a_reason(installed: Kube, operator: Any, namespace: str, workspace: str) -> None:
    obj = _ft("usererr", phases=[{"name": "only", "dataset": "knowledge"}])
    # kwok makes these pods exit 2, the code labrador-trainer uses for invalid input
    obj["spec"]["resources"]["podMetadata"] = {"annotations": {"labrador.dev/kwok-exit-code": "2"}}
    obj["spec"]["runPolicy"] = {"backoffLimit": 5}
    installed.apply(obj, namespace)
    status = wait_for(
        lambda: (s := _status(installed, namespace, "usererr")).get("phase") == "Failed" and s,
        timeout=60,
        what="Failed",
    )
    assert _conds(status)["Failed"] == ("True", "UserError")
    assert _conds(status)["Ready"] == ("False", "UserError")
    job = installed.get("job", "usererr-only", namespace)
    assert job["status"]["failed"] < 5, "a user error must not be retried up to backoffLimit"
    selector = "involvedObject.kind=FineTuneJob,involvedObject.name=usererr"

    def warning_event() -> bool:
        out = installed.kubectl("get", "events", "-n", namespace, "--field-selector", selector, "-o", "json")
        return any(e["type"] == "Warning" and e["reason"] == "UserError" for e in json.loads(out.stdout)["items"])

    wait_for(warning_event, timeout=20, what="Warning event UserError")


def test_suspend_and_resume(installed: Kube, operator: Any, namespace: str, workspace: str) -> None:
    obj = _ft("pausable", phases=[{"name": "only", "dataset": "knowledge"}])
    obj["spec"]["resources"]["podMetadata"] = {"annotations": {"labrador.dev/kwok-hold": "true"}}
    installed.apply(obj, namespace)
    wait_for(lambda: _status(installed, namespace, "pausable").get("phase") == "Running", timeout=30, what="Running")
    installed.kubectl(
        "patch", "ftj", "pausable", "-n", namespace, "--type=merge", "-p", '{"spec": {"runPolicy": {"suspend": true}}}'
    )
    status = wait_for(
        lambda: (s := _status(installed, namespace, "pausable")).get("phase") == "Suspended" and s,
        timeout=30,
        what="Suspended",
    )
    assert _conds(status)["Suspended"] == ("True", "Suspended")
    wait_for(
        lambda: installed.get("job", "pausable-only", namespace)["spec"].get("suspend") is True,
        timeout=10,
        what="Job suspended",
    )
    wait_for(lambda: not _list(installed, "pods", namespace), timeout=30, what="pods stopped")
    installed.kubectl(
        "patch", "ftj", "pausable", "-n", namespace, "--type=merge", "-p", '{"spec": {"runPolicy": {"suspend": false}}}'
    )
    wait_for(
        lambda: _status(installed, namespace, "pausable").get("phase") == "Running", timeout=30, what="Running again"
    )
    assert installed.get("job", "pausable-only", namespace)["spec"]["suspend"] is False


def _list(kube: Kube, resource: str, ns: str) -> list[dict[str, Any]]:
    items = json.loads(
        kube.kubectl(
            "get", resource, "-n", ns, "-l", "app.kubernetes.io/managed-by=labrador-operator", "-o", "json"
        ).stdout
    )["items"]
    return items


def test_progress_is_read_from_rank_zero_metrics(
    installed: Kube, operator: Any, namespace: str, workspace: str
) -> None:
    """rank 0 serves real prometheus-client metrics on its pod IP (loopback here); status shows them."""
    import threading
    from http.server import ThreadingHTTPServer

    from prometheus_client import CollectorRegistry, Gauge
    from prometheus_client.exposition import MetricsHandler

    obj = _ft("progress", phases=[{"name": "only", "dataset": "knowledge"}])
    obj["spec"]["resources"]["podMetadata"] = {"annotations": {"labrador.dev/kwok-hold": "true"}}
    installed.apply(obj, namespace)
    wait_for(lambda: _status(installed, namespace, "progress").get("phase") == "Running", timeout=30, what="Running")
    pods = json.loads(
        installed.kubectl(
            "get", "pods", "-n", namespace, "-l", "batch.kubernetes.io/job-name=progress-only", "-o", "json"
        ).stdout
    )["items"]
    rank0 = next(p for p in pods if p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "0")
    ip = rank0["status"]["podIP"]

    registry = CollectorRegistry()
    for metric, value in (
        ("step", 30),
        ("total_steps", 120),
        ("epoch", 1.5),
        ("loss", 1.234),
        ("learning_rate", 2e-5),
        ("tokens_per_second", 4321.5),
        ("eta_seconds", 754),
    ):
        Gauge(f"labrador_train_{metric}", metric, registry=registry).set(value)
    server = ThreadingHTTPServer((ip, 9400), MetricsHandler.factory(registry))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:

        def progress() -> dict[str, Any] | None:
            p = _status(installed, namespace, "progress").get("progress")
            return p if p and p.get("step") == 30 else None

        p = wait_for(progress, timeout=30, what="status.progress from rank 0")
        assert p["totalSteps"] == 120 and p["loss"] == 1.234 and p["tokensPerSecond"] == 4321.5
        assert p["percent"] == 25 and p["etaSeconds"] == 754 and p["eta"] == "12m34s"
        row = installed.kubectl("get", "ftj", "progress", "-n", namespace).stdout.splitlines()[1].split()
        assert "25" in row and "12m34s" in row
    finally:
        server.shutdown()
        server.server_close()


def test_deadline_fails_with_its_reason(installed: Kube, operator: Any, namespace: str, workspace: str) -> None:
    obj = _ft("late", phases=[{"name": "only", "dataset": "knowledge"}])
    obj["spec"]["resources"]["podMetadata"] = {"annotations": {"labrador.dev/kwok-hold": "true"}}
    obj["spec"]["runPolicy"] = {"activeDeadlineSeconds": 2}
    installed.apply(obj, namespace)
    status = wait_for(
        lambda: (s := _status(installed, namespace, "late")).get("phase") == "Failed" and s,
        timeout=60,
        what="Failed by deadline",
    )
    assert _conds(status)["Failed"] == ("True", "DeadlineExceeded")


def test_ttl_cleans_children_and_the_result_stays(
    installed: Kube, operator: Any, namespace: str, workspace: str
) -> None:
    obj = _ft("shortlived", phases=[{"name": "only", "dataset": "knowledge"}])
    obj["spec"]["runPolicy"] = {"ttlSecondsAfterFinished": 1}
    installed.apply(obj, namespace)
    wait_for(
        lambda: _status(installed, namespace, "shortlived").get("phase") == "Succeeded", timeout=60, what="Succeeded"
    )
    wait_for(lambda: not _list(installed, "jobs", namespace), timeout=60, what="Jobs removed by the TTL controller")
    time.sleep(3)  # "stays unchanged": a finished resource never starts over when its Jobs are gone
    assert not _list(installed, "jobs", namespace)
    assert _status(installed, namespace, "shortlived")["phase"] == "Succeeded"


def test_a_running_job_is_not_rewritten_in_a_loop(
    installed: Kube, operator: Any, namespace: str, workspace: str
) -> None:
    """The operator writes the parent once per transition, not on every watch event it caused itself (a stale view
    of its own conditions used to flip lastTransitionTime back and forth: ~35 status patches/s while running)."""
    obj = one_phase_job("steady", {"labrador.dev/kwok-hold": "true"})
    installed.apply(obj, namespace)
    wait_for(lambda: _status(installed, namespace, "steady").get("phase") == "Running", timeout=60, what="Running")
    obj = installed.get("finetunejob", "steady", namespace)
    # no kopf timer or daemon runs per object (one sampler does): no finalizer, no writes to add and remove it
    assert not obj["metadata"].get("finalizers"), obj["metadata"]
    rv = int(obj["metadata"]["resourceVersion"])
    time.sleep(8)  # mid-run: the pod holds (kwok), nothing to report
    assert _status(installed, namespace, "steady")["phase"] == "Running"
    # every write of the object since rv, replayed by a watch from that resourceVersion
    url = f"/apis/labrador.dev/v1alpha1/namespaces/{namespace}/finetunejobs"
    url += f"?watch=1&resourceVersion={rv}&fieldSelector=metadata.name%3Dsteady&timeoutSeconds=2"
    events = [json.loads(line) for line in installed.kubectl("get", "--raw", url).stdout.splitlines() if line]
    writes = sum(1 for e in events if e["type"] == "MODIFIED")
    assert writes <= 3, f"{writes} writes of a running FineTuneJob in 8 s"
    installed.kubectl("delete", "finetunejob", "steady", "-n", namespace)


def test_a_reconcile_that_keeps_failing_says_why_on_the_resource(
    installed: Kube, operator: Any, namespace: str, workspace: str
) -> None:
    """A quota that refuses the phase's Job: after a few tries the FineTuneJob carries a ReconcileError condition with
    the API server's own message (and a Warning Event), not only a log line; lifting the quota clears it."""
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-jobs"},
        "spec": {"hard": {"count/jobs.batch": "0"}},
    }
    installed.apply(quota, namespace)
    installed.apply(_ft("quota", phases=[{"name": "only", "dataset": "knowledge"}]), namespace)

    def error() -> dict[str, Any] | None:
        conds = _status(installed, namespace, "quota").get("conditions") or []
        return next((c for c in conds if c["type"] == "ReconcileError" and c["status"] == "True"), None)

    cond = wait_for(error, timeout=60, what="ReconcileError condition")
    assert cond["reason"] == "Forbidden" and "no-jobs" in cond["message"] and "403" in cond["message"], cond
    events = json.loads(installed.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
    assert any(
        e["reason"] == "ReconcileError" and e["type"] == "Warning" and e["involvedObject"]["name"] == "quota"
        for e in events
    ), [e["reason"] for e in events]

    installed.kubectl("delete", "resourcequota", "no-jobs", "-n", namespace)
    wait_for(lambda: _list(installed, "jobs", namespace), timeout=60, what="the Job, once the quota is gone")
    wait_for(lambda: error() is None, timeout=30, what="ReconcileError cleared")
    assert not any(c["type"] == "ReconcileError" for c in _status(installed, namespace, "quota").get("conditions", []))


def test_an_unschedulable_phase_says_so_in_the_running_condition(
    installed: Kube, operator: Any, namespace: str, workspace: str
) -> None:
    """The real scheduler's verdict on the phase's pods reaches the resource: Running=False, reason Unschedulable,
    with the scheduler's own message; the job stays Pending (not Running) meanwhile."""
    obj = _ft("nowhere", phases=[{"name": "only", "dataset": "knowledge"}])
    obj["spec"]["resources"]["nodeSelector"] = {"labrador.dev/no-such-pool": "h100"}
    installed.apply(obj, namespace)

    def unschedulable() -> dict[str, Any] | None:
        s = _status(installed, namespace, "nowhere")
        running = next((c for c in s.get("conditions", []) if c["type"] == "Running"), None)
        return s if running and running["reason"] == "Unschedulable" else None

    s = wait_for(unschedulable, timeout=60, what="Running condition reason Unschedulable")
    running = next(c for c in s["conditions"] if c["type"] == "Running")
    assert running["status"] == "False" and "node" in running["message"] and "phase only" in running["message"]
    assert s["phase"] == "Pending"


def test_pods_the_namespace_does_not_allow_say_why_on_the_resource(
    installed: Kube, operator: Any, namespace: str, workspace: str
) -> None:
    """A ResourceQuota smaller than one rank's request: the API server refuses the phase's pods, so the Job has none
    and Kubernetes says why only in the Job controller's FailedCreate Event — the operator puts that on the Running
    condition; once the quota is lifted the pods come and the reason goes."""
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "small"},
             "spec": {"hard": {"requests.cpu": "1500m"}}}  # fmt: skip
    installed.apply(quota, namespace)
    obj = _ft("greedy", phases=[{"name": "only", "dataset": "knowledge"}])
    obj["spec"]["resources"].update(nodes=1, cpu="2")
    installed.apply(obj, namespace)

    def running() -> dict[str, Any]:
        conds = _status(installed, namespace, "greedy").get("conditions", [])
        return next((c for c in conds if c["type"] == "Running"), {})

    cond = wait_for(lambda: (c := running()).get("reason") == "FailedCreate" and c, timeout=90, what="FailedCreate")
    assert cond["status"] == "False" and "exceeded quota: small" in cond["message"], cond
    assert "phase only" in cond["message"] and "greedy-only" in cond["message"], cond
    assert _status(installed, namespace, "greedy")["phase"] == "Pending"
    assert not _list(installed, "pods", namespace), "the quota admitted no pod"

    installed.kubectl("delete", "resourcequota", "small", "-n", namespace)
    wait_for(lambda: running().get("reason") not in (None, "FailedCreate"), timeout=120, what="the reason gone")
    assert _list(installed, "pods", namespace)


def test_rdma_in_a_restricted_namespace_says_why_on_the_resource(
    installed: Kube, operator: Any, namespace: str, workspace: str
) -> None:
    """RDMA asks for IPC_LOCK, which Pod Security "restricted" forbids: admission refuses the ranks, and the
    FineTuneJob's Running condition carries Pod Security's own words (which capability, which level)."""
    installed.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    obj = _ft("infiniband", phases=[{"name": "only", "dataset": "knowledge"}])
    obj["spec"]["resources"]["rdma"] = {"resourceName": "rdma/rdma_shared_device_a"}
    installed.apply(obj, namespace)

    def running() -> dict[str, Any]:
        conds = _status(installed, namespace, "infiniband").get("conditions", [])
        return next((c for c in conds if c["type"] == "Running"), {})

    cond = wait_for(lambda: (c := running()).get("reason") == "FailedCreate" and c, timeout=90, what="FailedCreate")
    assert "PodSecurity" in cond["message"] and "restricted" in cond["message"], cond
    assert "IPC_LOCK" in cond["message"], cond


def test_a_crashed_rank_restarts_the_phase_as_a_group(
    installed: Kube, operator: Any, namespace: str, workspace: str
) -> None:
    """Two ranks running; rank 1 crashes (exit 1). The phase Job fails whole (the Job controller stops rank 0: a
    static torchrun rendezvous takes no replacement), the operator starts attempt r1 of the phase with its own
    Service, and when that attempt finishes the FineTuneJob succeeds with the restart counted."""
    obj = _ft("gang", phases=[{"name": "only", "dataset": "knowledge"}])
    obj["spec"]["resources"]["podMetadata"] = {"annotations": {"labrador.dev/kwok-hold": "true"}}
    installed.apply(obj, namespace)

    def pods(job: str) -> list[dict[str, Any]]:
        out = installed.kubectl(
            "get", "pods", "-n", namespace, "-l", f"batch.kubernetes.io/job-name={job}", "-o", "json"
        )
        return [p for p in json.loads(out.stdout)["items"] if p["status"].get("phase") == "Running"]

    first = wait_for(lambda: len(p := pods("gang-only")) == 2 and p, timeout=60, what="both ranks of attempt 0 running")
    rank1 = next(p for p in first if p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "1")
    installed.kubectl("annotate", "pod", rank1["metadata"]["name"], "-n", namespace,
                      "labrador.dev/kwok-exit-code=1", "labrador.dev/kwok-hold-")  # fmt: skip
    second = wait_for(lambda: len(p := pods("gang-only-r1")) == 2 and p, timeout=90, what="attempt r1 running")
    failed = installed.get("job", "gang-only", namespace)["status"]
    assert any(c["type"] == "Failed" and c["status"] == "True" for c in failed.get("conditions", [])), failed
    assert not pods("gang-only"), "rank 0 of the failed attempt must be stopped, not left waiting for rank 1"
    assert installed.get("service", "gang-only-r1", namespace)["spec"]["selector"] == {
        "batch.kubernetes.io/job-name": "gang-only-r1"
    }
    wait_for(
        lambda: (s := _status(installed, namespace, "gang")).get("phase") == "Running" and s.get("restarts", 0) >= 1,
        timeout=30,
        what="Running with the restart counted (never back to Pending between attempts)",
    )
    for p in second:
        installed.kubectl("annotate", "pod", p["metadata"]["name"], "-n", namespace, "labrador.dev/kwok-hold-")
    s = wait_for(lambda: (s := _status(installed, namespace, "gang")).get("phase") == "Succeeded" and s, timeout=90,
                 what="Succeeded after the group restart")  # fmt: skip
    assert s["phases"][0]["state"] == "Succeeded" and s["restarts"] >= 1


def test_an_older_labradors_finalizer_is_taken_off(
    installed: Kube, operator: Any, namespace: str, workspace: str
) -> None:
    """An older Labrador ran per-object kopf timers, which put kopf's finalizer on its resources; this one needs none
    and takes it off (a patch: the one write on the kinds themselves), so deleting such a resource is never
    blocked."""
    objs = [_ft("legacy", phases=[{"name": "only", "dataset": "knowledge"}])]
    for kind in ("taxonomy", "syntheticdatajob"):
        obj = copy.deepcopy(load_example(kind))
        obj["metadata"] = {"name": "legacy"}
        objs.append(obj)
    for obj in objs:
        obj["metadata"]["finalizers"] = ["labrador.dev/finalizer"]
        installed.apply(obj, namespace)
    for obj in objs:
        kind = obj["kind"].lower()
        wait_for(
            lambda kind=kind: not installed.get(kind, "legacy", namespace)["metadata"].get("finalizers"),
            timeout=60,
            what=f"the old finalizer taken off the {kind}",
        )
        installed.kubectl("delete", kind, "legacy", "-n", namespace, "--timeout=30s")


def _gated(name: str, forgetting: float) -> dict[str, Any]:
    """One phase and the evaluation on kwok; every pod reports the same result (training reads its keys, the
    evaluation its own): held-out loss 2.4 -> 1.9, MCQ 0.25 -> 0.45, the given forgetting delta."""
    result = {
        "final_loss": 1.2, "tokens": 100, "report": f"models/{name}/evaluation.json", "base_score": 0.4,
        "tuned_score": 0.55, "forgetting_delta": forgetting,
        "measures": {"held_out_loss": {"base": 2.4, "tuned": 1.9}, "mcq_accuracy": {"base": 0.25, "tuned": 0.45}},
        "digest": "sha256:" + "c" * 64, "files": 3, "bytes": 4096,  # what the export step reports
    }  # fmt: skip
    obj = one_phase_job(name, {"labrador.dev/kwok-termination-message": json.dumps(result)})
    obj["spec"]["evaluation"] = {
        "enabled": True,
        "gate": {"minHeldOutLossImprovement": 0.1, "minMcqAccuracyGain": 0.1, "maxForgetting": 0.1},
    }
    obj["spec"]["output"] = {"uri": f"s3://models/team/{name}", "secretRef": {"name": "s3-push"}}
    obj["spec"]["serve"] = {"servedModelName": f"{name}-tuned", "resources": {"cpu": "1", "memory": "1Gi"}}
    return obj


def test_the_quality_gate_promotes_and_exports_a_good_model_and_not_a_forgetful_one(
    installed: Kube, operator: Any, namespace: str, workspace: str
) -> None:
    installed.apply([_gated("good", 0.02), _gated("forgetful", 0.5)], namespace)
    for name in ("good", "forgetful"):
        wait_for(lambda n=name: _status(installed, namespace, n).get("phase") == "Succeeded", timeout=120,
                 what=f"{name} Succeeded")  # fmt: skip
    good, bad = _status(installed, namespace, "good"), _status(installed, namespace, "forgetful")
    assert _conds(good)["Promoted"] == ("True", "GatePassed")
    assert _conds(bad)["Promoted"] == ("False", "GateFailed")
    message = next(c["message"] for c in bad["conditions"] if c["type"] == "Promoted")
    assert message.startswith("not promoted:") and "forgetting +0.5 (needs <= 0.1): failed" in message
    assert "held-out loss 2.4 -> 1.9 (improvement +0.5, needs >= 0.1): passed" in message
    assert good["outputs"]["evaluation"]["mcqAccuracy"] == {"base": 0.25, "tuned": 0.45}
    # only the promoted model was exported: its export Job (owned by it) ran, its location and digest are on status
    assert good["outputs"]["exported"] == {"uri": "s3://models/team/good", "digest": "sha256:" + "c" * 64,
                                           "files": 3, "bytes": 4096}  # fmt: skip
    assert "exported" not in bad["outputs"]
    jobs = {j["metadata"]["name"]: j for j in json.loads(installed.kubectl("get", "jobs", "-n", namespace, "-o",
                                                                           "json").stdout)["items"]}  # fmt: skip
    assert "good-export" in jobs and "forgetful-export" not in jobs
    owner = jobs["good-export"]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner.get("controller")) == ("FineTuneJob", "good", True)
    export_pod = jobs["good-export"]["spec"]["template"]["spec"]["containers"][0]
    assert export_pod["envFrom"] == [{"secretRef": {"name": "s3-push"}}]
    # the column a user sees
    table = installed.kubectl("get", "ftj", "good", "forgetful", "-n", namespace).stdout.splitlines()
    start = table[0].index("PROMOTED")  # columns are aligned; some cells are empty
    end = table[0].index(" ENDPOINT") + 1
    promoted = {line.split()[0]: line[start:end].strip() for line in table[1:]}
    assert promoted == {"good": "True", "forgetful": "False"}, table
    # the Succeeded Event says the verdict
    events = installed.kubectl("get", "events", "-n", namespace, "--field-selector",
                               "involvedObject.name=forgetful,reason=Succeeded", "-o", "json").stdout  # fmt: skip
    assert "not promoted" in events
    _the_promoted_model_is_served(installed, namespace)


def _deployments(kube: Kube, ns: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _list(kube, "deployments", ns)}


def _the_promoted_model_is_served(kube: Kube, ns: str) -> None:
    """spec.serve on both: only the promoted one gets its server (Deployment + Service, owned by it; its pod runs
    on kwok), Serving says so with the endpoint (a column too); a change of spec.serve patches the server, removing
    spec.serve removes it, and deleting the job removes what it serves (the garbage collector)."""
    wait_for(lambda: _conds(_status(kube, ns, "good")).get("Serving", ("", ""))[0] == "True", timeout=90,
             what="good: Serving True")  # fmt: skip
    good, bad = _status(kube, ns, "good"), _status(kube, ns, "forgetful")
    assert good["outputs"]["serving"] == {"url": f"http://good-serve.{ns}.svc:8000", "model": "good-tuned",
                                          "readyReplicas": 1}  # fmt: skip
    assert _conds(good)["Serving"] == ("True", "ServerReady") and good["phase"] == "Succeeded"
    assert _conds(bad)["Serving"] == ("False", "NotPromoted") and "serving" not in bad["outputs"]
    deployments = _deployments(kube, ns)
    assert "good-serve" in deployments and "forgetful-serve" not in deployments
    owner = deployments["good-serve"]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner.get("controller")) == ("FineTuneJob", "good", True)
    main = deployments["good-serve"]["spec"]["template"]["spec"]["containers"][0]
    assert main["command"][:4] == ["labrador-trainer", "serve", "--model", "/workspace/models/" + ns + "/good"]
    services = {s["metadata"]["name"]: s for s in _list(kube, "services", ns)}
    assert "good-serve" in services and "forgetful-serve" not in services
    assert services["good-serve"]["metadata"]["ownerReferences"][0]["name"] == "good"
    table = kube.kubectl("get", "ftj", "good", "-n", ns).stdout.splitlines()
    assert f"http://good-serve.{ns}.svc:8000" in table[1], table
    # scaled through the spec: the operator patches the Deployment
    kube.kubectl("patch", "ftj", "good", "-n", ns, "--type=merge", "-p", '{"spec": {"serve": {"replicas": 2}}}')
    wait_for(lambda: _deployments(kube, ns)["good-serve"]["spec"]["replicas"] == 2, timeout=60,
             what="the Deployment scaled to 2")  # fmt: skip
    wait_for(lambda: (_status(kube, ns, "good").get("outputs") or {}).get("serving", {}).get("readyReplicas") == 2,
             timeout=60, what="status: 2 ready replicas")  # fmt: skip
    # spec.serve removed: server, Service and the status about them go; the job stays Succeeded and promoted
    kube.kubectl("patch", "ftj", "good", "-n", ns, "--type=json", "-p", '[{"op": "remove", "path": "/spec/serve"}]')
    wait_for(lambda: "good-serve" not in _deployments(kube, ns), timeout=60, what="the Deployment deleted")
    wait_for(lambda: "Serving" not in _conds(_status(kube, ns, "good")), timeout=60, what="Serving dropped")
    assert "good-serve" not in {s["metadata"]["name"] for s in _list(kube, "services", ns)}
    done = _status(kube, ns, "good")
    assert done["phase"] == "Succeeded" and _conds(done)["Promoted"][0] == "True" and "serving" not in done["outputs"]
    # served again, then the job deleted: the garbage collector removes the server with it
    kube.kubectl("patch", "ftj", "good", "-n", ns, "--type=merge", "-p", '{"spec": {"serve": {}}}')
    wait_for(lambda: "good-serve" in _deployments(kube, ns), timeout=60, what="the Deployment made again")
    kube.kubectl("delete", "ftj", "good", "-n", ns, "--timeout=60s")
    wait_for(lambda: "good-serve" not in _deployments(kube, ns), timeout=90, what="the Deployment collected")


def _inference_services(kube: Kube, ns: str) -> dict[str, dict[str, Any]]:
    return {i["metadata"]["name"]: i for i in _list(kube, "inferenceservices.serving.kserve.io", ns)}


def _kserve_says(
    kube: Kube, ns: str, name: str, ready: str, reason: str = "", message: str = "", url: str = ""
) -> None:
    """What KServe's controller would write (none runs here): the status subresource of the InferenceService, of its
    current generation."""
    generation = kube.get("inferenceservices.serving.kserve.io", name, ns)["metadata"]["generation"]
    condition = {"type": "Ready", "status": ready, "lastTransitionTime": "2026-01-01T00:00:00Z"}
    condition |= {k: v for k, v in (("reason", reason), ("message", message)) if v}
    status: dict[str, Any] = {"observedGeneration": generation, "conditions": [condition]}
    if url:
        status |= {"url": url, "address": {"url": url}}
    kube.kubectl("patch", "inferenceservices.serving.kserve.io", name, "-n", ns, "--subresource=status",
                 "--type=merge", "-p", json.dumps({"status": status}))  # fmt: skip


def test_a_promoted_model_is_served_by_a_kserve_inference_service(
    installed: Kube, operator: Any, namespace: str, workspace: str
) -> None:
    """spec.serve.runtime kserve, against KServe's real CRD (hack/kserve-crd.sh; no KServe controller: the test writes
    the status it would): the promoted job gets an InferenceService (owned by it, accepted by KServe's schema) and no
    Deployment; KServe's Ready and URL become the Serving condition and status.outputs.serving; a change of
    spec.serve patches it, removing spec.serve deletes it, deleting the job has the garbage collector remove it."""
    ns, isvc = namespace, "kserved-serve"
    stopped = one_phase_job("stopped")
    stopped["spec"]["serve"] = {"runtime": "kserve", "replicas": 0}
    refused = installed.apply(stopped, ns, check=False)
    assert refused.returncode != 0 and "kserve needs spec.serve.replicas >= 1" in refused.stderr, refused.stderr
    obj = one_phase_job("kserved")
    obj["spec"]["serve"] = {"runtime": "kserve", "servedModelName": "kserved-tuned", "vllm": {"maxModelLen": 2048},
                            "resources": {"cpu": "1", "memory": "1Gi", "gpus": 1}}  # fmt: skip
    installed.apply(obj, ns)
    wait_for(lambda: _status(installed, ns, "kserved").get("phase") == "Succeeded", timeout=120, what="Succeeded")
    made = wait_for(lambda: _inference_services(installed, ns).get(isvc), timeout=60, what="the InferenceService")
    owner = made["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner.get("controller")) == ("FineTuneJob", "kserved", True)
    assert made["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    model = made["spec"]["predictor"]["model"]
    assert model["modelFormat"]["name"] == "huggingface"
    assert model["storageUri"] == f"pvc://{workspace}/models/{ns}/kserved"
    assert model["args"][:2] == ["--model_name=kserved-tuned", "--max-model-len=2048"]
    assert model["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "kserved-serve" not in _deployments(installed, ns)  # KServe's server, not the operator's
    wait_for(lambda: _conds(_status(installed, ns, "kserved")).get("Serving") == ("False", "ServerStarting"),
             timeout=60, what="Serving: ServerStarting")  # fmt: skip
    # KServe says not ready, with its reason: the condition says it
    _kserve_says(installed, ns, isvc, "False", "PredictorConfigurationReady", "waiting for the predictor pod")
    wait_for(lambda: "waiting for the predictor pod" in next(
        c["message"] for c in _status(installed, ns, "kserved")["conditions"] if c["type"] == "Serving"),
        timeout=60, what="KServe's message on Serving")  # fmt: skip
    # KServe says Ready at its URL: Serving True, outputs.serving.url is that URL
    url = f"http://{isvc}-predictor.{ns}.svc.cluster.local"
    _kserve_says(installed, ns, isvc, "True", url=url)
    wait_for(lambda: _conds(_status(installed, ns, "kserved")).get("Serving") == ("True", "ServerReady"),
             timeout=60, what="Serving: ServerReady")  # fmt: skip
    done = _status(installed, ns, "kserved")
    assert done["outputs"]["serving"] == {"url": url, "model": "kserved-tuned", "runtime": "kserve"}
    serving = next(c for c in done["conditions"] if c["type"] == "Serving")
    assert serving["message"] == f"model kserved-tuned at {url}/openai/v1"
    # scaled through the spec: the InferenceService is patched (replicas -> min and max)
    installed.kubectl("patch", "ftj", "kserved", "-n", ns, "--type=merge", "-p", '{"spec": {"serve": {"replicas": 2}}}')
    wait_for(lambda: _inference_services(installed, ns)[isvc]["spec"]["predictor"].get("maxReplicas") == 2,
             timeout=60, what="the InferenceService patched to 2 replicas")  # fmt: skip
    assert _inference_services(installed, ns)[isvc]["spec"]["predictor"]["minReplicas"] == 2
    # spec.serve removed: the InferenceService and the status about it go
    installed.kubectl("patch", "ftj", "kserved", "-n", ns, "--type=json", "-p",
                      '[{"op": "remove", "path": "/spec/serve"}]')  # fmt: skip
    wait_for(lambda: isvc not in _inference_services(installed, ns), timeout=60, what="the InferenceService deleted")
    wait_for(lambda: "Serving" not in _conds(_status(installed, ns, "kserved")), timeout=60, what="Serving dropped")
    # served again, then the job deleted: the garbage collector removes the InferenceService with it
    installed.kubectl("patch", "ftj", "kserved", "-n", ns, "--type=merge", "-p",
                      '{"spec": {"serve": {"runtime": "kserve"}}}')  # fmt: skip
    wait_for(lambda: isvc in _inference_services(installed, ns), timeout=60, what="the InferenceService made again")
    installed.kubectl("delete", "ftj", "kserved", "-n", ns, "--timeout=60s")
    wait_for(lambda: isvc not in _inference_services(installed, ns), timeout=90, what="the InferenceService collected")
