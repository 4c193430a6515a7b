"""What only a real kubelet and container runtime can show: the pod builders' security context enforced inside the
container, `$(VAR)` expansion by the kubelet against the builders' escaping, and an image that cannot be pulled
reported on the resource. On the e2e tier's cluster (tests/e2e/conftest.py), with the chart the demo installed
(installed here when this file runs alone).
"""

from __future__ import annotations

import io
import json
import math
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


def _demo_ftj(
    name: str, *, epochs: int, batch: int, nodes: int, backoff_limit: int, checkpoint_every: int | None = None
) -> dict[str, Any]:
    """A one-phase FineTuneJob on the demo's data and 2-layer model, CPU pods, evaluation off."""
    training: dict[str, Any] = {"maxSeqLen": 1024, "maxBatchLen": 2048}
    if checkpoint_every is not None:
        training["checkpointEvery"] = checkpoint_every
    return {
        "apiVersion": "labrador.dev/v1alpha1", "kind": "FineTuneJob", "metadata": {"name": name},
        "spec": {
            "model": {"uri": "pvc://labrador-workspace/models/smollm2-135m-instruct-2l"},
            "data": {"syntheticDataJobRef": {"name": "demo-data"}},
            "phases": [{"name": "knowledge", "dataset": "knowledge", "epochs": epochs, "learningRate": 1e-4,
                        "effectiveBatchSize": batch, "warmupSteps": 0}],
            "training": training,
            "resources": {"nodes": nodes, "gpusPerNode": 0, "cpu": "500m", "memory": "3Gi"},
            "evaluation": {"enabled": False},
            "runPolicy": {"backoffLimit": backoff_limit},
        },
    }  # fmt: skip


#: the uninterrupted 2-node run the gang's weights are compared with: its own name (the single-pod SIGTERM test's
#: "steady" lives in the same namespace, and applying over a finished FineTuneJob would not train it again)
REFERENCE = "unbroken"


def _demo_data(installed: dict[str, Any]) -> None:
    """The demo's generated data (SyntheticDataJob demo-data) in its namespace: made here when this test runs alone."""
    kube = installed["kube"]
    sdg = kube.run("kubectl", "get", "syntheticdatajob", "demo-data", "-n", demo.NAMESPACE, "-o", "json", check=False)
    if (json.loads(sdg or "{}").get("status") or {}).get("phase") != "Succeeded":
        demo.up(demo.Options(dir=installed["opts"].dir, samples_per_seed_example=1, max_samples=32, max_questions=5,
                             out=io.StringIO()))  # fmt: skip


def test_deleting_a_training_pod_saves_state_and_its_replacement_resumes(installed: dict[str, Any]) -> None:
    """`kubectl delete pod` on a running phase: the kubelet delivers SIGTERM, the trainer saves its state and exits
    143 inside the grace period, the Job's replacement pod resumes from that state, and the model is the same as
    an uninterrupted run of the same spec (on the demo's generated data, in the demo's namespace)."""
    import threading

    from kubernetes import config, watch
    from kubernetes.client import CoreV1Api

    kube, ns = installed["kube"], demo.NAMESPACE
    _demo_data(installed)

    def ftj(name: str) -> dict[str, Any]:
        return _demo_ftj(name, epochs=4, batch=1, nodes=1, backoff_limit=0)

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
    # and the FineTuneJob says so: the phase resumed from the step before the first one its replacement logged
    phase = kube.get_json("finetunejob", "preempted", "-n", ns)["status"]["phases"][0]
    assert phase.get("resumedFromStep") == steps[0] - 1, phase
    assert "resumedFromStep" not in kube.get_json("finetunejob", "steady", "-n", ns)["status"]["phases"][0]
    ws = installed["opts"].workspace
    models = {}
    for name in ("steady", "preempted"):
        out = (kube.get_json("finetunejob", name, "-n", ns)["status"].get("outputs") or {}).get("model")
        models[name] = _weights(demo.host_path(ws, out))
    assert models["steady"].keys() == models["preempted"].keys()
    assert all((models["steady"][k] == models["preempted"][k]).all() for k in models["steady"]), "weights differ"


JOB_LABEL, INDEX_LABEL = "batch.kubernetes.io/job-name", "batch.kubernetes.io/job-completion-index"


class _PodEnds:
    """How each pod of the Jobs named ``prefix*`` ended, as the API showed it while it existed (the Job controller
    deletes the pods it stops): the main container's exit code and termination message, and when this watch saw it
    (time.monotonic)."""

    def __init__(self, api: Any, ns: str, prefix: str) -> None:
        import threading

        self.ends: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, args=(api, ns, prefix), daemon=True)
        self._thread.start()

    def _follow(self, api: Any, ns: str, prefix: str) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for ev in w.stream(api.list_namespaced_pod, ns, timeout_seconds=20):
                    pod = ev["object"]
                    labels = pod.metadata.labels or {}
                    if labels.get(JOB_LABEL, "").startswith(prefix):
                        rec = self.ends.setdefault(pod.metadata.name, {
                            "job": labels[JOB_LABEL], "index": int(labels.get(INDEX_LABEL, "-1"))})  # fmt: skip
                        for cs in pod.status.container_statuses or []:
                            term = cs.state.terminated if cs.state else None
                            if cs.name == "main" and term is not None and "exit" not in rec:
                                rec.update(exit=term.exit_code, message=term.message or "", at=time.monotonic())
                    if self._stop.is_set():
                        w.stop()
            except Exception:  # a dropped watch: list and watch again
                time.sleep(1)

    def wait(self, job: str, n: int, timeout: float) -> list[dict[str, Any]]:
        """The ends of ``n`` pods of ``job``, by completion index."""
        deadline = time.monotonic() + timeout
        while True:
            ended = sorted((r for r in list(self.ends.values()) if r["job"] == job and "exit" in r),
                           key=lambda r: r["index"])  # fmt: skip
            if len(ended) >= n:
                return ended
            assert time.monotonic() < deadline, (job, self.ends)
            time.sleep(0.5)

    def close(self) -> None:
        self._stop.set()


def _running_pods(kube: Any, ns: str, job: str, n: int, timeout: float = 300) -> list[dict[str, Any]]:
    """The ``n`` pods of ``job`` once all run, by completion index."""
    deadline = time.monotonic() + timeout
    while True:
        pods = kube.get_json("pods", "-n", ns, "-l", f"{JOB_LABEL}={job}")["items"]
        live = [p for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]
        if len(live) == n:
            return sorted(live, key=lambda p: int(p["metadata"]["labels"][INDEX_LABEL]))
        assert time.monotonic() < deadline, [(p["metadata"]["name"], p["status"].get("phase")) for p in pods]
        time.sleep(1)


def _log_until(kube: Any, ns: str, pod: str, pattern: str, timeout: float = 600) -> re.Match[str]:
    """The first match of ``pattern`` in the pod's log, once it is there."""
    deadline = time.monotonic() + timeout
    while True:
        log = kube.run("kubectl", "logs", pod, "-n", ns, "-c", "main", check=False) or ""
        if m := re.search(pattern, log, re.M):
            return m
        assert time.monotonic() < deadline, f"{pattern!r} not in the log of {pod}: {log[-3000:]}"
        time.sleep(1)


def _job_failed(kube: Any, ns: str, job: str, timeout: float = 120) -> dict[str, Any]:
    """The Job's Failed condition, once the Job controller has set it."""
    deadline = time.monotonic() + timeout
    while True:
        st = kube.get_json("job", job, "-n", ns).get("status") or {}
        failed = [c for c in st.get("conditions") or [] if c["type"] == "Failed" and c["status"] == "True"]
        if failed:
            return failed[0]
        assert time.monotonic() < deadline, st
        time.sleep(1)


def _states(run: Path) -> list[int]:
    """Steps of the complete resume states the trainer left under a phase's output directory (state/p00-s<step>)."""
    return sorted(int(d.parent.name.split("-s")[1]) for d in (run / "state").glob("p00-s*/state.pt"))


def _kill_training_process(pod_uid: str) -> int:
    """SIGKILL the training process (torchrun's worker: LOCAL_RANK in its environment) of a pod, found on this
    machine (the node) by the pod's cgroup: a hard crash of that rank, nothing saved, nothing said."""
    import signal

    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cgroup, environ = (proc / "cgroup").read_text(), (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"pod{pod_uid}" in cgroup and any(e.startswith(b"LOCAL_RANK=") for e in environ):
            os.kill(int(proc.name), signal.SIGKILL)
            return int(proc.name)
    raise AssertionError(f"no training process in pod {pod_uid}")


@pytest.mark.timeout(2700)  # with the demo's pipeline first when run alone (its data), ~10 min of it
def test_a_two_node_phase_restarts_as_a_group_and_resumes_when_one_rank_is_lost(installed: dict[str, Any]) -> None:
    """A 2-node phase (two pods, torchrun over the headless Service) loses rank 1 twice, and each time the phase
    restarts as a group — a new attempt Job with both ranks — from the last saved state:

    1. rank 1's pod deleted (SIGTERM): both ranks stop at the same step, save it and exit 143 within the grace
       period; a preemption, not counted; attempt r1 resumes from that step;
    2. rank 1's training process killed (SIGKILL): a crash, counted (runPolicy.backoffLimit 1); rank 0 is not left
       waiting on its peer; attempt r2 resumes from the last periodic state (training.checkpointEvery).

    The model is the same as an uninterrupted 2-node run of the same spec (on the demo's generated data)."""
    from kubernetes import config
    from kubernetes.client import CoreV1Api

    t_start = time.monotonic()
    kube, ns = installed["kube"], demo.NAMESPACE
    _demo_data(installed)
    # about 14 steps of 2 samples (one per rank), however many knowledge samples the demo's teacher kept
    sdg = kube.get_json("syntheticdatajob", "demo-data", "-n", ns)
    kept = (((sdg.get("status") or {}).get("outputs") or {}).get("counts") or {}).get("knowledge") or 2
    epochs = max(2, math.ceil(14 / math.ceil(kept / 2)))

    def ftj(name: str) -> dict[str, Any]:  # one sample per rank and step; a saved state every 4 steps
        return _demo_ftj(name, epochs=epochs, batch=2, nodes=2, backoff_limit=1, checkpoint_every=8)

    def status(name: str) -> dict[str, Any]:
        st = kube.get_json("finetunejob", name, "-n", ns).get("status") or {}
        assert st.get("phase") != "Failed", st
        return st

    api = CoreV1Api(config.new_client_from_config(config_file=str(kube.kubeconfig)))
    ends = _PodEnds(api, ns, "gang-knowledge")
    run = installed["opts"].workspace / "runs" / ns / "gang" / "knowledge"
    figures: dict[str, Any] = {"knowledge_samples": kept, "epochs": epochs}
    try:
        t_apply = time.monotonic()
        kube.apply([ftj(REFERENCE), ftj("gang")], ns)
        # -- 1. attempt 0 has trained two steps (rank 0 prints them): rank 1's pod is deleted ---------------------
        job0 = "gang-knowledge"
        pods = _running_pods(kube, ns, job0, 2)
        total = int(_log_until(kube, ns, pods[0]["metadata"]["name"], r"^step 2/(\d+) ").group(1))
        assert total >= 8, (total, kept, epochs)  # room for both interruptions and a periodic state between
        grace = pods[1]["spec"].get("terminationGracePeriodSeconds", 30)
        t0 = time.monotonic()
        kube.kubectl("delete", "pod", pods[1]["metadata"]["name"], "-n", ns, "--wait=false")
        r0, r1 = ends.wait(job0, 2, grace + 60)
        # both ranks saved the same step and said so, each in its own pod: a preemption, not a crash
        assert (r0["exit"], r1["exit"]) == (143, 143), (r0, r1)
        stopped = {re.search(r"stopped at step (\d+)/", json.loads(r["message"])["message"]).group(1) for r in (r0, r1)}
        assert len(stopped) == 1, (r0, r1)
        n = int(stopped.pop())
        assert 2 <= n < total and n in _states(run), (n, _states(run))
        assert max(r0["at"], r1["at"]) - t0 < grace, (r0, r1)
        figures["preempted"] = {"step": n, "total": total, "rank1_s": round(r1["at"] - t0, 1),
                                "rank0_s": round(r0["at"] - t0, 1)}  # fmt: skip
        failed = _job_failed(kube, ns, job0)
        assert failed["reason"] == "PodFailurePolicy" and "143" in failed["message"], failed

        # -- 2. attempt r1, both ranks anew, resumes from step n; past its next periodic state, rank 1 crashes ----
        job1 = "gang-knowledge-r1"
        pods = _running_pods(kube, ns, job1, 2)
        first = int(_log_until(kube, ns, pods[0]["metadata"]["name"], r"^step (\d+)/\d+ ").group(1))
        assert first == n + 1, (first, n)  # went on from the saved step
        figures["r1_first_step"] = first
        deadline = time.monotonic() + 900
        while not [s for s in _states(run) if s > n]:  # a periodic state of this attempt
            status("gang")
            assert time.monotonic() < deadline, _states(run)
            time.sleep(1)
        m = max(_states(run))
        _log_until(kube, ns, pods[0]["metadata"]["name"], rf"^step {m + 1}/\d+ ")  # one step past it, unsaved
        assert m + 1 < total, (m, total)
        t1 = time.monotonic()
        _kill_training_process(pods[1]["metadata"]["uid"])
        r0, r1 = ends.wait(job1, 2, 120)
        assert r1["exit"] != 0 and r0["exit"] != 0, (r0, r1)
        # rank 0 is not left waiting on its lost peer until a gloo/NCCL timeout (30 min by default)
        assert r0["at"] - t1 < grace + 30, (r0, t1)
        assert _job_failed(kube, ns, job1)["reason"] == "BackoffLimitExceeded"  # a crash: counted
        # the last state: m, or the next one when rank 0 was already writing it (its gather done) at the kill
        last = max(_states(run))
        assert m <= last < total, (m, _states(run))
        figures["crash"] = {"state_at_kill": m, "last_state": last, "rank1_exit": r1["exit"], "rank0_exit": r0["exit"],
                            "rank1_s": round(r1["at"] - t1, 1), "rank0_s": round(r0["at"] - t1, 1)}  # fmt: skip

        # -- 3. attempt r2 resumes from the last periodic state and finishes ------------------------------------
        job2 = "gang-knowledge-r2"
        pods = _running_pods(kube, ns, job2, 2)
        first = int(_log_until(kube, ns, pods[0]["metadata"]["name"], r"^step (\d+)/\d+ ").group(1))
        assert first == last + 1, (first, last)
        figures["r2_first_step"] = first
        for name in (REFERENCE, "gang"):
            deadline = time.monotonic() + 900
            while (st := status(name)).get("phase") != "Succeeded":
                assert time.monotonic() < deadline, st
                time.sleep(2)
        st = status("gang")
        assert st["restarts"] >= 2, st  # the failed pods of the two failed attempts
        jobs = {j["metadata"]["name"] for j in kube.get_json("jobs", "-n", ns)["items"]}
        assert {job0, job1, job2} <= jobs and "gang-knowledge-r3" not in jobs, jobs
        now = time.monotonic()
        figures.update(restarts=st["restarts"], attempts=sorted(j for j in jobs if j.startswith("gang-")),
                       phases_s=round(now - t_apply), wall_s=round(now - t_start))  # fmt: skip
    finally:
        ends.close()
        print(f"two-node gang restart: {json.dumps(figures)}")
    ws = installed["opts"].workspace
    models = {}
    for name in (REFERENCE, "gang"):
        out = (kube.get_json("finetunejob", name, "-n", ns)["status"].get("outputs") or {}).get("model")
        models[name] = _weights(demo.host_path(ws, out))
    assert models[REFERENCE].keys() == models["gang"].keys()
    assert all((models[REFERENCE][k] == models["gang"][k]).all() for k in models[REFERENCE]), "weights differ"
