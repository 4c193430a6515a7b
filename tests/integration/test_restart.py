"""Restart safety: the operator process is killed (SIGKILL) at several points of a FineTuneJob's life and restarted;
no child is duplicated or orphaned and the job still reaches its terminal state.

This test runs its own operator processes (`labrador-operator`, as the chart's ServiceAccount) restricted to the
`r-*` namespaces, so the in-process operator of the other tests (namespaces `t-*`) does not interfere.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Kube, bind_claim, cluster_mod, scratch_namespace, wait_for


class OperatorProcess:
    """`labrador-operator` as a child process (restricted to ``namespace``, a name or a glob; None: the cluster)."""

    def __init__(
        self, kubeconfig: Path, log: Path, namespace: str | None = "r-*", args: tuple[str, ...] = (), **env: str
    ) -> None:
        self.kubeconfig, self.log, self.namespace, self.args, self.env = kubeconfig, log, namespace, args, env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = Path(sys.executable).with_name("labrador-operator")
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "LABRADOR_PROGRESS_INTERVAL": "1", **self.env}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    str(exe),
                    f"--namespace={self.namespace}" if self.namespace else "--all-namespaces",
                    "--metrics-port=0",
                    f"--liveness=http://127.0.0.1:{cluster_mod.free_port()}/healthz",
                    *self.args,
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


@pytest.fixture
def r_namespace(installed: Kube) -> Iterator[str]:
    with scratch_namespace(installed, "r") as name:
        yield name


def _items(kube: Kube, resource: str, ns: str) -> list[dict[str, Any]]:
    out = kube.kubectl("get", resource, "-n", ns, "-l", "app.kubernetes.io/managed-by=labrador-operator", "-o", "json")
    return json.loads(out.stdout)["items"]


def _release_holds(kube: Kube, ns: str) -> None:
    for pod in _items(kube, "pods", ns):
        if "labrador.dev/kwok-hold" in (pod["metadata"].get("annotations") or {}):
            kube.kubectl("annotate", "pod", pod["metadata"]["name"], "-n", ns, "labrador.dev/kwok-hold-", check=False)


def test_killed_operator_resumes_without_duplicates(
    installed: Kube, operator_kubeconfig: Path, r_namespace: str, tmp_path: Path
) -> None:
    ns = r_namespace
    kube = installed
    bind_claim(kube, ns, "labrador-workspace")
    op = OperatorProcess(operator_kubeconfig, tmp_path / "operator.log")
    op.start()
    try:
        kube.apply(
            {
                "apiVersion": "labrador.dev/v1alpha1",
                "kind": "FineTuneJob",
                "metadata": {"name": "crashy"},
                "spec": {
                    "model": {"uri": "hf://org/model"},
                    "data": {"knowledgePath": "data/k.jsonl", "skillsPath": "data/s.jsonl"},
                    "resources": {
                        "nodes": 2,
                        "gpusPerNode": 1,
                        "cpu": "1",
                        "memory": "1Gi",
                        "podMetadata": {"annotations": {"labrador.dev/kwok-hold": "true"}},
                    },
                    "evaluation": {"enabled": False},
                },
            },
            ns,
        )
        wait_for(lambda: len(_items(kube, "pods", ns)) == 2, timeout=60, what="phase 1 pods")
        first_uid = kube.get("job", "crashy-knowledge", ns)["metadata"]["uid"]

        # kill while phase 1 runs; a new process must adopt, not duplicate
        op.kill()
        op.start()
        _release_holds(kube, ns)
        wait_for(
            lambda: any(j["metadata"]["name"] == "crashy-skills" for j in _items(kube, "jobs", ns)),
            timeout=60,
            what="phase 2 created by the restarted operator",
        )
        # kill right after phase 2 was created
        op.kill()
        op.start()
        wait_for(
            lambda: len([p for p in _items(kube, "pods", ns) if "skills" in p["metadata"]["name"]]) == 2,
            timeout=60,
            what="phase 2 pods",
        )
        _release_holds(kube, ns)
        status = wait_for(
            lambda: (s := kube.get("ftj", "crashy", ns).get("status") or {}).get("phase") == "Succeeded" and s,
            timeout=90,
            what="Succeeded after restarts",
        )
    finally:
        op.stop()

    assert [p["state"] for p in status["phases"]] == ["Succeeded", "Succeeded"]
    jobs = _items(kube, "jobs", ns)
    assert sorted(j["metadata"]["name"] for j in jobs) == ["crashy-knowledge", "crashy-skills"]
    assert kube.get("job", "crashy-knowledge", ns)["metadata"]["uid"] == first_uid
    assert sorted(s["metadata"]["name"] for s in _items(kube, "services", ns)) == ["crashy-knowledge", "crashy-skills"]
    assert _items(kube, "configmaps", ns) == []  # a FineTuneJob's Jobs carry their run configs
    for obj in jobs + _items(kube, "services", ns):
        owner = obj["metadata"]["ownerReferences"][0]
        assert owner["kind"] == "FineTuneJob" and owner["name"] == "crashy" and owner["controller"] is True
    log = (tmp_path / "operator.log").read_text()
    assert "Traceback" not in log, log[-5000:]
