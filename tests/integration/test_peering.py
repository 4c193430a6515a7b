"""Two operator replicas with kopf peering: the higher priority one works, the other stands by and takes over when
the first dies — no child is ever created twice.

Runs its own `labrador-operator` processes (as the chart's ServiceAccount) on one `p-*` namespace, with the peering
CRDs rendered from the chart (`operator.peering.enabled`); the operator creates its KopfPeering object itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, Kube, bind_claim, one_phase_job, scratch_namespace, wait_for
from tests.integration.test_restart import OperatorProcess


@pytest.fixture
def p_namespace(installed: Kube) -> Iterator[str]:
    rendered = installed.helm(
        "template", "labrador", str(ROOT / "charts" / "labrador"),
        "--set", "operator.peering.enabled=true", "--show-only", "templates/kopf-peering-crds.yaml",
    ).stdout  # fmt: skip
    installed.kubectl("apply", "-f", "-", input=rendered)
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
