"""labrador-local against the real control plane: the real scheduler binds pods to its node, the real Job
controller reads the status it writes, and the pods' commands really run as local processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import Kube, bind_claim, scratch_namespace, wait_for

NODE = f"local-{uuid.uuid4().hex[:6]}"


def _interpreter_for(uid: int) -> str | None:
    """A Python the pod's user can execute (a venv under /root is not), or None."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        real = os.path.realpath(candidate)
        try:
            subprocess.run([real, "-c", "pass"], user=uid, group=uid, extra_groups=[], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError):
            continue
        return real
    return None


def _start_runner(kube: Kube, base: Path, node: str) -> subprocess.Popen[bytes]:
    """labrador-local as a subprocess for ``node`` (logs, volumes and state under ``base``), its node Ready."""
    argv = [sys.executable, "-m", "labrador_operator.localnode.main", "--node-name", node,
            "--log-dir", str(base / "logs"), "--volume-root", str(base / "volumes"), "--state-dir", str(base / "state"),
            "--max-parallel", "4", "--restart-backoff", "1"]  # fmt: skip
    with open(base / "agent.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **kube.env})

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"labrador-local exited: {(base / 'agent.log').read_text()}")
        node_obj = kube.kubectl("get", "node", node, "-o", "json", check=False)
        if node_obj.returncode:
            return False
        conds = json.loads(node_obj.stdout)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    wait_for(ready, timeout=30, what=f"node {node} Ready")
    return proc


def _stop_runner(kube: Kube, proc: subprocess.Popen[bytes], base: Path, node: str) -> None:
    """SIGTERM: the agent exits 0 without a traceback and leaves its node NotReady."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    agent_log = (base / "agent.log").read_text()
    assert proc.returncode == 0, agent_log
    assert "Traceback" not in agent_log, agent_log
    ready_cond = next(c for c in kube.get("node", node)["status"]["conditions"] if c["type"] == "Ready")
    assert ready_cond["status"] == "False", ready_cond


@pytest.fixture(scope="module")
def runner(kube: Kube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """One labrador-local for the module's tests; stopped with SIGTERM at the end."""
    base = tmp_path_factory.mktemp("local-runner")
    proc = _start_runner(kube, base, NODE)
    try:
        yield {"logs": base / "logs", "volumes": base / "volumes"}
    finally:
        try:
            _stop_runner(kube, proc, base, NODE)
        finally:
            kube.kubectl("delete", "node", NODE, "--wait=false", check=False)


def _pod_spec(command: list[str], node: str = NODE, **extra: Any) -> dict[str, Any]:
    return {
        "restartPolicy": "Never",
        "nodeSelector": {"kubernetes.io/hostname": node},
        "containers": [{"name": "main", "image": "labrador/none", "command": command, **extra}],
    }


def _job_pod(kube: Kube, ns: str, job: str) -> dict[str, Any]:
    pods = json.loads(kube.kubectl("get", "pods", "-n", ns, "-l", f"batch.kubernetes.io/job-name={job}",
                                   "-o", "json").stdout)["items"]  # fmt: skip
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def _job_condition(kube: Kube, ns: str, job: str) -> str | None:
    conds = kube.get("job", job, ns).get("status", {}).get("conditions", [])
    return next((c["type"] for c in conds if c["type"] in ("Complete", "Failed") and c["status"] == "True"), None)


SCRIPT = textwrap.dedent(
    """
    import os, pathlib, sys
    out = pathlib.Path("/workspace/run")
    out.mkdir(exist_ok=True)
    cfg = pathlib.Path("/etc/labrador/config.yaml").read_text()
    (out / "result.txt").write_text(
        f"{os.environ['API_TOKEN']}|{os.environ['MY_NAMESPACE']}|{os.environ['GREETING']}|{cfg}|{sys.argv[1]}|{os.getuid()}"
    )
    try:
        open("/etc/labrador/x", "w")
        print("config volume is writable", flush=True)
        sys.exit(1)
    except OSError:
        pass
    print("hello from", os.environ["POD_IP"], flush=True)
    pathlib.Path("/dev/termination-log").write_text("all good: 42 samples")
    """
)


def test_job_completes_with_env_volumes_and_termination_message(kube: Kube, runner: dict[str, Path]) -> None:
    uid = 1000
    python = _interpreter_for(uid)
    security = {"runAsUser": uid, "runAsGroup": uid, "fsGroup": uid, "runAsNonRoot": True} if python else {}
    with scratch_namespace(kube, "local") as ns:
        bind_claim(kube, ns, "workspace")
        kube.kubectl("create", "secret", "generic", "api", "--from-literal=token=s3cr3t", "-n", ns)
        kube.kubectl("create", "configmap", "cfg", "--from-literal=config.yaml=lr: 0.1", "-n", ns)
        pod = _pod_spec(
            [python or sys.executable, "-c", SCRIPT, "$(GREETING)-$$(GREETING)-$(UNDEFINED)"],
            env=[
                {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
                {"name": "MISSING", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": True}}},
                {"name": "MY_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "GREETING", "value": "hi-$(MY_NAMESPACE)"},
            ],
            volumeMounts=[
                {"name": "workspace", "mountPath": "/workspace"},
                {"name": "config", "mountPath": "/etc/labrador", "readOnly": True},
            ],
            terminationMessagePath="/dev/termination-log",
        )
        pod["securityContext"] = security
        pod["volumes"] = [
            {"name": "workspace", "persistentVolumeClaim": {"claimName": "workspace"}},
            {"name": "config", "configMap": {"name": "cfg"}},
        ]
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "ok"},
               "spec": {"backoffLimit": 0, "template": {"spec": pod}}}  # fmt: skip
        t0 = time.monotonic()
        kube.apply(job, ns)
        wait_for(lambda: _job_condition(kube, ns, "ok"), timeout=40, what="Job finished")
        elapsed = time.monotonic() - t0
        p = _job_pod(kube, ns, "ok")
        assert _job_condition(kube, ns, "ok") == "Complete", json.dumps(p["status"], indent=1)
        state = p["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (state["exitCode"], state["reason"]) == (0, "Completed")
        assert state["message"] == "all good: 42 samples"
        ip = p["status"]["podIP"]
        assert ip.startswith("127.0.0.") and p["status"]["podIPs"] == [{"ip": ip}]
        result = (runner["volumes"] / ns / "workspace" / "run" / "result.txt").read_text()
        greeting = f"hi-{ns}"
        expected_uid = str(uid) if python else str(os.getuid())
        assert result == f"s3cr3t|{ns}|{greeting}|lr: 0.1|{greeting}-$(GREETING)-$(UNDEFINED)|{expected_uid}"
        log_dir = Path(p["metadata"]["annotations"]["labrador.dev/log-path"])
        assert log_dir == runner["logs"] / ns / p["metadata"]["name"]
        assert (log_dir / "main.log").read_text() == f"hello from {ip}\n"
        print(f"\nlocal runner: Job created → Complete in {elapsed:.1f}s")


def test_exit_code_fails_the_pod(kube: Kube, runner: dict[str, Path]) -> None:
    with scratch_namespace(kube, "local") as ns:
        pod = _pod_spec([sys.executable, "-c", "import sys; print('bad input', file=sys.stderr); sys.exit(3)"],
                        terminationMessagePolicy="FallbackToLogsOnError")  # fmt: skip
        kube.apply({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bad"},
                    "spec": {"backoffLimit": 0, "template": {"spec": pod}}}, ns)  # fmt: skip
        wait_for(lambda: _job_condition(kube, ns, "bad"), timeout=40, what="Job finished")
        assert _job_condition(kube, ns, "bad") == "Failed"
        p = _job_pod(kube, ns, "bad")
        assert p["status"]["phase"] == "Failed"
        state = p["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (state["exitCode"], state["reason"], state["message"]) == (3, "Error", "bad input")


def test_privileged_pod_is_refused(kube: Kube, runner: dict[str, Path]) -> None:
    with scratch_namespace(kube, "local") as ns:
        spec = _pod_spec(["/bin/true"], securityContext={"privileged": True})
        spec["volumes"] = [{"name": "host", "hostPath": {"path": "/etc"}}]
        kube.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "priv"}, "spec": spec}, ns)
        wait_for(lambda: kube.get("pod", "priv", ns)["status"].get("phase") == "Failed", timeout=30, what="refused")
        st = kube.get("pod", "priv", ns)["status"]
        assert st["reason"] == "Unsupported"
        assert "container 'main' is privileged" in st["message"] and "volume 'host' is a hostPath" in st["message"]
        cond = next(c for c in st["conditions"] if c["type"] == "labrador.dev/LocalRunnerAdmission")
        assert (cond["status"], cond["reason"]) == ("False", "Unsupported")
        assert "containerStatuses" not in st  # nothing ran


def test_deleting_a_running_pod_kills_its_process(kube: Kube, runner: dict[str, Path]) -> None:
    with scratch_namespace(kube, "local") as ns:
        spec = _pod_spec(["sleep", "300"])
        spec["terminationGracePeriodSeconds"] = 5
        kube.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper"}, "spec": spec}, ns)
        pid = wait_for(lambda: _running_pid(kube, ns, "sleeper"), timeout=30, what="sleeper running")
        assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"300"]
        assert kube.get("pod", "sleeper", ns)["status"]["conditions"]
        t0 = time.monotonic()
        kube.kubectl("delete", "pod", "sleeper", "-n", ns, "--timeout=30s")  # returns once the pod object is gone
        assert time.monotonic() - t0 < 10
        assert not _alive(pid)


def _running_pid(kube: Kube, ns: str, pod: str) -> int | None:
    cs = (kube.get("pod", pod, ns)["status"].get("containerStatuses") or [{}])[0]
    return int(cs["containerID"].split("://")[1]) if "running" in cs.get("state", {}) else None


def _alive(pid: int) -> bool:
    try:
        return b"sleep" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_agent_restart_and_shutdown_fail_running_pods_as_disruptions(
    kube: Kube, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Killed agent: on restart its orphaned process is stopped and the pod is Failed with DisruptionTarget (a Job
    retries it); SIGTERM: running pods are stopped and reported the same way, the node goes NotReady."""
    node, base = f"local-{uuid.uuid4().hex[:6]}", tmp_path_factory.mktemp("local-restart")
    proc = _start_runner(kube, base, node)
    try:
        with scratch_namespace(kube, "local") as ns:
            for name in ("lost", "stopped"):
                spec = _pod_spec(["sleep", "300"], node=node)
                spec["terminationGracePeriodSeconds"] = 2
                kube.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}, ns)
                pid = wait_for(lambda n=name: _running_pid(kube, ns, n), timeout=30, what=f"{name} running")
                if name == "lost":
                    proc.kill()  # no cleanup: the pod's process outlives the agent
                    proc.wait()
                    assert _alive(pid)
                    proc = _start_runner(kube, base, node)
                else:
                    _stop_runner(kube, proc, base, node)
                st = wait_for(lambda n=name: (s := kube.get("pod", n, ns)["status"])["phase"] == "Failed" and s,
                              timeout=30, what=f"{name} Failed")  # fmt: skip
                disruption = next(c for c in st["conditions"] if c["type"] == "DisruptionTarget")
                assert (disruption["status"], disruption["reason"]) == ("True", "TerminationByKubelet")
                assert st["reason"] == ("NodeRestarted" if name == "lost" else "Terminated"), st
                wait_for(lambda p=pid: not _alive(p), timeout=10, what=f"{name}'s process gone")
    finally:
        _stop_runner(kube, proc, base, node)
        kube.kubectl("delete", "node", node, "--wait=false", check=False)
