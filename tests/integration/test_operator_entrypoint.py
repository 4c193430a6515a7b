"""`labrador-operator` starts against the test cluster, serves its probe and metrics, and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.integration.conftest import Kube, cluster_mod, wait_for


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except OSError:
        return 0


def test_operator_serves_probe_and_metrics_and_exits_on_sigterm(installed: Kube, tmp_path: Path) -> None:
    health, metrics = cluster_mod.free_port(), cluster_mod.free_port()
    exe = Path(sys.executable).with_name("labrador-operator")
    log = open(tmp_path / "operator.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(exe), f"--liveness=http://127.0.0.1:{health}/healthz", f"--metrics-port={metrics}", "-A"],
        # not the in-process test operator's settings (webhooks, pod annotations): a plain start
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("LABRADOR_")},
            "KUBECONFIG": str(installed.cluster.kubeconfig),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def healthy() -> bool:
            assert proc.poll() is None, (tmp_path / "operator.log").read_text()
            return _get(f"http://127.0.0.1:{health}/healthz") == 200

        wait_for(healthy, timeout=60, what="liveness endpoint")
        assert _get(f"http://127.0.0.1:{metrics}/metrics") == 200
        time.sleep(2)  # watches established: stop it as Kubernetes would stop a running pod
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    text = (tmp_path / "operator.log").read_text()
    assert "Traceback" not in text, text
