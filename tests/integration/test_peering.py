"""Two operator replicas with kopf peering: the higher priority one works, the other stands by and takes over when
the first dies — no child is ever created twice.

Runs its own `labrador-operator` processes (as the chart's ServiceAccount) on one `p-*` namespace, with the peering
CRDs and rules of the chart (the tier installs it with `operator.peering.enabled`); the operator creates its
KopfPeering object itself — and, watching the whole cluster, a ClusterKopfPeering.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Kube, bind_claim, one_phase_job, scratch_namespace, wait_for
from tests.integration.test_restart import OperatorProcess


@pytest.fixture
def p_namespace(installed: Kube) -> Iterator[str]:
    installed.kubectl("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev", "--timeout=60s")
    with scratch_namespace(installed, "p") as name:
        yield name


def _jobs(kube: Kube, ns: str) -> list[str]:
    out = kube.kubectl("get", "jobs", "-n", ns, "-o", "json").stdout
    return sorted(j["metadata"]["name"] for j in json.loads(out)["items"])


def test_standby_replica_takes_over_without_duplicates(
    installed: Kube, operator_kubeconfig: Path, p_namespace: str, tmp_path: Path
) -> None:
    ns, kube = p_namespace, installed
    bind_claim(kube, ns, "labrador-workspace")
    common = {"namespace": ns, "LABRADOR_PEERING_LIFETIME": "15", "LABRADOR_POD_ANNOTATIONS": ""}
    active = OperatorProcess(
        operator_kubeconfig, tmp_path / "active.log", args=("--peering=labrador", "--priority=200"), **common
    )
    standby = OperatorProcess(
        operator_kubeconfig,
        tmp_path / "standby.log",
        args=("--peering=labrador", "--priority=100", "--log-level=debug"),
        **common,
    )
    active.start()
    try:
        wait_for(
            lambda: kube.kubectl("get", "kopfpeering", "labrador", "-n", ns, check=False).returncode == 0,
            timeout=60,
            what="the KopfPeering object the operator creates",
        )
        standby.start()
        wait_for(
            lambda: (
                f"finetunejobs.v1alpha1.labrador.dev in '{ns}' (blockers: labrador@"
                in (tmp_path / "standby.log").read_text()
            ),
            timeout=60,
            what="the standby to hold its watches in favour of the higher priority replica",
        )
        kube.apply(one_phase_job("first"), ns)
        wait_for(lambda: _jobs(kube, ns) == ["first-only"], timeout=60, what="children of the first job")
        wait_for(
            lambda: (kube.get("ftj", "first", ns).get("status") or {}).get("phase") == "Succeeded",
            timeout=90,
            what="first job Succeeded",
        )

        active.kill()  # no goodbye: the standby takes over once the heartbeat expires
        kube.apply(one_phase_job("second"), ns)
        wait_for(
            lambda: _jobs(kube, ns) == ["first-only", "second-only"],
            timeout=90,
            what="the standby creating the second job's children",
        )
        wait_for(
            lambda: (kube.get("ftj", "second", ns).get("status") or {}).get("phase") == "Succeeded",
            timeout=90,
            what="second job Succeeded",
        )
    finally:
        standby.stop()
        if active.proc is not None and active.proc.poll() is None:
            active.stop()
    assert _jobs(kube, ns) == ["first-only", "second-only"]
    peering = kube.get("kopfpeering", "labrador", ns)
    assert peering["metadata"]["name"] == "labrador"
    for log in ("active.log", "standby.log"):
        text = (tmp_path / log).read_text()
        assert "Traceback" not in text, text[-5000:]
    standby_log = (tmp_path / "standby.log").read_text()
    assert "Resuming operations" in standby_log
    # the progress sampler follows the same rule as kopf: paused while outranked, active after the takeover
    assert "sampler paused" in standby_log and "sampler active" in standby_log, standby_log[-3000:]
    assert "sampler paused" not in (tmp_path / "active.log").read_text()
    assert "cannot read peering" not in standby_log


def test_a_cluster_wide_replica_keeps_its_presence_in_a_cluster_peering(
    installed: Kube, operator_kubeconfig: Path, tmp_path: Path
) -> None:
    """Watching the whole cluster, a replica creates its ClusterKopfPeering, announces itself in it and renews that
    (kopf's keep-alive) while its progress sampler reads it each round to know whether it is outranked."""
    kube = installed
    kube.kubectl("wait", "--for=condition=Established", "crd/clusterkopfpeerings.kopf.dev", "--timeout=60s")
    op = OperatorProcess(
        operator_kubeconfig,
        tmp_path / "cluster.log",
        namespace=None,
        args=("--peering=labrador-cluster", "--priority=100"),
        LABRADOR_PEERING_LIFETIME="6",
        LABRADOR_POD_ANNOTATIONS="",
    )

    def presence() -> dict[str, Any]:
        out = kube.kubectl("get", "clusterkopfpeering", "labrador-cluster", "-o", "json", check=False)
        status = (json.loads(out.stdout).get("status") or {}) if out.returncode == 0 else {}
        return next(iter(status.values()), {}) if status else {}

    op.start()
    try:
        first = wait_for(lambda: presence().get("lastseen") and presence(), timeout=60, what="the replica's presence")
        assert first["priority"] == 100, first
        wait_for(lambda: presence().get("lastseen", "") > first["lastseen"], timeout=60, what="a keep-alive")
    finally:
        op.stop()
        kube.kubectl("delete", "clusterkopfpeering", "labrador-cluster", "--wait=false", check=False)
    text = (tmp_path / "cluster.log").read_text()
    assert "Traceback" not in text and "cannot read peering" not in text, text[-3000:]
