"""What only a real kubelet and container runtime can show: the pod builders' security context enforced inside the
container, `$(VAR)` expansion by the kubelet against the builders' escaping, and an image that cannot be pulled
reported on the resource. On the e2e tier's cluster (tests/e2e/conftest.py), with the chart the demo installed
(installed here when this file runs alone).
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from labrador_operator.api.common import BaseResources, Workspace
from labrador_operator.builders import common
from labrador_operator.builders.argv import argv_literal
from labrador_operator.settings import Settings
from tests.e2e.conftest import demo

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def installed(real_cluster: Any) -> dict[str, Any]:
    """The demo's installation on the e2e cluster: this commit's images in its registry, the chart with them."""
    opts = demo.Options(dir=real_cluster.dir, out=io.StringIO())
    kube = demo.control_plane(opts)
    refs = demo.publish_images(opts)
    if not kube.run("kubectl", "get", "deployment", demo.RELEASE, "-n", demo.RELEASE_NS, check=False):
        demo.install_chart(kube, opts, refs)
    return {"kube": kube, "refs": refs, "opts": opts}


def _namespace_with_workspace(kube: Any, ns: str, host_dir: Path) -> None:
    demo.ensure_namespace(kube, ns)
    host_dir.mkdir(parents=True, exist_ok=True)
    os.chown(host_dir, demo.IMAGE_UID, demo.IMAGE_UID)
    kube.apply(
        [
            {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"ws-{ns}"},
             "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"], "storageClassName": "",
                      "hostPath": {"path": str(host_dir)}, "claimRef": {"namespace": ns, "name": "ws"}}},
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "ws"},
             "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": f"ws-{ns}",
                      "resources": {"requests": {"storage": "1Gi"}}}},
        ],
        ns,
    )  # fmt: skip


def _wait_pod(kube: Any, ns: str, name: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod = kube.get_json("pod", name, "-n", ns)
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return pod
        time.sleep(1)
    raise AssertionError(f"pod {ns}/{name} did not finish: {json.dumps(pod.get('status'))[:2000]}")


def test_the_runtime_enforces_the_builders_security_context(installed: dict[str, Any], tmp_path: Path) -> None:
    """A workload pod exactly as the builders make it, in a namespace enforcing Pod Security "restricted": inside,
    the configured uid, no capabilities, a read-only root, and only the builders' volumes writable. A user string
    escaped with argv_literal reaches the process verbatim although the kubelet expands `$(VAR)` in commands."""
    kube, ns = installed["kube"], "e2e-security"
    _namespace_with_workspace(kube, ns, tmp_path / "ws")
    settings = Settings(workload_image=installed["refs"]["trainer"])
    script = (
        "id -u; id -g; grep CapEff /proc/self/status; touch /probe 2>&1 || true; "
        "touch /tmp/a /var/cache/labrador/a /dev/shm/a /workspace/a && echo scratch-writable; "
        'printf "user-string=%s\\n" "$0"; printf "own-ref=%s\\n" "$1"'
    )
    spec = common.pod_spec(
        settings=settings,
        command=["sh", "-c", script, argv_literal("v$(SECRET_VALUE)"), "$(SECRET_VALUE)"],
        env=[common.env_value("SECRET_VALUE", "leaked")],
        resources=BaseResources(cpu="100m", memory="256Mi"),
        gpus=0,
        workspace=Workspace(claim_name="ws"),
    )
    kube.apply([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"}, "spec": spec}], ns)
    pod = _wait_pod(kube, ns, "probe")
    logs = kube.kubectl("logs", "probe", "-n", ns)
    assert pod["status"]["phase"] == "Succeeded", (pod["status"], logs)
    lines = logs.splitlines()
    assert lines[:2] == [str(settings.workload_uid)] * 2, logs
    assert "CapEff:\t0000000000000000" in lines, logs
    assert "touch: cannot touch '/probe': Read-only file system" in lines, logs
    assert "scratch-writable" in lines, logs
    # escaped: verbatim; our own reference (not escaped) is expanded by the kubelet
    assert "user-string=v$(SECRET_VALUE)" in lines and "own-ref=leaked" in lines, logs


def test_an_image_that_cannot_be_pulled_is_on_the_finetunejobs_status(
    installed: dict[str, Any], tmp_path: Path
) -> None:
    """The operator's workload image points at a tag the registry does not have: the FineTuneJob says so, with the
    kubelet's reason and the image name, instead of sitting in Pending."""
    kube, ns = installed["kube"], "e2e-image-pull"
    _namespace_with_workspace(kube, ns, tmp_path / "ws")
    repo = installed["refs"]["trainer"].rsplit(":", 1)[0]
    bad = f"{repo}:no-such-tag"
    chart = str(demo.ROOT / "charts" / "labrador")
    kube.run("helm", "upgrade", demo.RELEASE, chart, "-n", demo.RELEASE_NS, "--reuse-values",
             "--set", "workloadImage.tag=no-such-tag", "--wait", "--timeout=3m", timeout=200)  # fmt: skip
    try:
        kube.apply(
            [{"apiVersion": "labrador.dev/v1alpha1", "kind": "FineTuneJob", "metadata": {"name": "pull"},
              "spec": {"model": {"uri": "pvc://ws/models/m"}, "workspace": {"claimName": "ws"},
                       "data": {"knowledgePath": "k.jsonl", "skillsPath": "s.jsonl"},
                       "resources": {"nodes": 1, "gpusPerNode": 0, "cpu": "100m", "memory": "256Mi"}}}],
            ns,
        )  # fmt: skip
        deadline, cond = time.monotonic() + 240, None
        while time.monotonic() < deadline:
            st = kube.get_json("finetunejob", "pull", "-n", ns).get("status") or {}
            pulls = [c for c in st.get("conditions") or [] if c.get("reason") in ("ImagePullBackOff", "ErrImagePull")]
            cond = pulls[0] if pulls else None
            if cond:
                break
            time.sleep(2)
        assert cond is not None, st
        assert cond["status"] == "False" and bad in cond["message"], cond
    finally:
        kube.run("helm", "upgrade", demo.RELEASE, chart, "-n", demo.RELEASE_NS, "--reuse-values",
                 "--set", f"workloadImage.tag={installed['refs']['trainer'].rsplit(':', 1)[1]}", "--wait",
                 "--timeout=3m", timeout=200)  # fmt: skip
        kube.kubectl("delete", "namespace", ns, "--wait=false")


def _weights(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    out: dict[str, Any] = {}
    for f in sorted(path.glob("*.safetensors")):
        out.update(load_file(str(f)))
    assert out, f"no weights under {path}"
    return out


def test_deleting_a_training_pod_saves_state_and_its_replacement_resumes(installed: dict[str, Any]) -> None:
    """`kubectl delete pod` on a running phase: the kubelet delivers SIGTERM, the trainer saves its state and exits
    143 inside the grace period, the Job's replacement pod resumes from that state, and the model is the same as
    an uninterrupted run of the same spec (on the demo's generated data, in the demo's namespace)."""
    import threading

    from kubernetes import config, watch
    from kubernetes.client import CoreV1Api

    kube, ns = installed["kube"], demo.NAMESPACE
    sdg = kube.run("kubectl", "get", "syntheticdatajob", "demo-data", "-n", ns, "-o", "json", check=False)
    if (json.loads(sdg or "{}").get("status") or {}).get("phase") != "Succeeded":  # run alone: make the demo's data
        demo.up(demo.Options(dir=installed["opts"].dir, samples_per_seed_example=1, max_samples=16, max_questions=5,
                             out=io.StringIO()))  # fmt: skip

    def ftj(name: str) -> dict[str, Any]:
        return {
            "apiVersion": "labrador.dev/v1alpha1", "kind": "FineTuneJob", "metadata": {"name": name},
            "spec": {
                "model": {"uri": "pvc://labrador-workspace/models/smollm2-135m-instruct-2l"},
                "data": {"syntheticDataJobRef": {"name": "demo-data"}},
                "phases": [{"name": "knowledge", "dataset": "knowledge", "epochs": 4, "learningRate": 1e-4,
                            "effectiveBatchSize": 1, "warmupSteps": 0}],
                "training": {"maxSeqLen": 1024, "maxBatchLen": 2048},
                "resources": {"nodes": 1, "gpusPerNode": 0, "cpu": "500m", "memory": "3Gi"},
                "evaluation": {"enabled": False},
                "runPolicy": {"backoffLimit": 0},
            },
        }  # fmt: skip

    kube.apply([ftj("steady"), ftj("preempted")], ns)
    api = CoreV1Api(config.new_client_from_config(config_file=str(kube.kubeconfig)))
    deadline = time.monotonic() + 600
    while True:  # the preempted one has trained a few steps, and has steps left
        st = kube.get_json("finetunejob", "preempted", "-n", ns).get("status") or {}
        p = st.get("progress") or {}
        if (p.get("step") or 0) >= 2 and p.get("totalSteps") and p["step"] < p["totalSteps"] - 3:
            break
        assert st.get("phase") != "Succeeded", f"finished before it could be interrupted: {p}"
        assert time.monotonic() < deadline, st
        time.sleep(0.5)
    mine = [x for x in kube.get_json("pods", "-n", ns)["items"] if x["metadata"]["name"].startswith("preempted-")]
    pods = [x for x in mine if x["status"].get("phase") == "Running"]
    assert len(pods) == 1, [x["metadata"]["name"] for x in pods]
    victim = pods[0]["metadata"]["name"]
    grace = pods[0]["spec"].get("terminationGracePeriodSeconds", 30)
    seen: dict[str, Any] = {}

    def follow() -> None:
        w = watch.Watch()
        for ev in w.stream(api.list_namespaced_pod, ns, field_selector=f"metadata.name={victim}", timeout_seconds=120):
            for cs in ev["object"].status.container_statuses or []:
                if cs.state and cs.state.terminated:
                    seen["exit"], seen["finished"] = cs.state.terminated.exit_code, time.monotonic()
                    w.stop()

    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    kube.kubectl("delete", "pod", victim, "-n", ns, "--wait=false")
    watcher.join(timeout=grace + 60)
    assert seen.get("exit") == 143, seen  # saved its state and exited on SIGTERM, not killed at the grace period
    assert seen["finished"] - t0 < grace, seen

    for name in ("steady", "preempted"):
        deadline = time.monotonic() + 900
        while (phase := (kube.get_json("finetunejob", name, "-n", ns).get("status") or {}).get("phase")) != "Succeeded":
            assert phase != "Failed" and time.monotonic() < deadline, kube.get_json("finetunejob", name, "-n", ns)
            time.sleep(2)
    mine = [x for x in kube.get_json("pods", "-n", ns)["items"] if x["metadata"]["name"].startswith("preempted-")]
    replacement = [x for x in mine if x["metadata"]["name"] != victim and "knowledge" in x["metadata"]["name"]]
    assert replacement, "the Job made no replacement pod"
    log = kube.kubectl("logs", replacement[0]["metadata"]["name"], "-n", ns)
    steps = [int(n) for n in re.findall(r"(?m)^step (\d+)/\d+ ", log)]
    assert steps and steps[0] > 1, log[-3000:]  # it went on from the saved step, not from the start
    ws = installed["opts"].workspace
    models = {}
    for name in ("steady", "preempted"):
        out = (kube.get_json("finetunejob", name, "-n", ns)["status"].get("outputs") or {}).get("model")
        models[name] = _weights(demo.host_path(ws, out))
    assert models["steady"].keys() == models["preempted"].keys()
    assert all((models["steady"][k] == models["preempted"][k]).all() for k in models["steady"]), "weights differ"
