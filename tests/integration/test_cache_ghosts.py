"""Ghosts: a deletion the operator's watch never saw is dropped from its cache by the periodic resync.

When a watch's resourceVersion has been compacted away, the API server answers 410 Gone and kopf re-lists; the list
yields only what exists, so an object deleted while the watch was down never reaches the cache as DELETED — it stays
there, a ghost, and reconciles decide from it. ``Cache.resync`` (every ``LABRADOR_CACHE_RESYNC_SECONDS``) forgets
entries two LISTs in a row lack. The ghost here is a FineTuneJob's phase Job: while the cache holds it, the phase
looks running and nothing is created; once it is forgotten, the FineTuneJob reconciles and creates its Job again.

This test restarts the API server, so it runs a control plane of its own (not the session ``cluster``), and the
operator as a child process (``python -m labrador_operator.main``, as the chart's ServiceAccount) that it can pause:

1. a first operator process creates the FineTuneJob's children; a second one takes over (a child this process has
   created itself in the last ``client.RECENT_SECONDS`` would not be created again, whatever the cache says);
2. SIGSTOP the operator, then restart the API server: its watch connections break (a merely paused process would
   read the DELETED event from its socket on resume);
3. delete the Job, write once more, compact etcd at the current revision (etcd cannot serve the deletion);
4. restart the API server again: its watch cache starts after the deletion (it cannot replay it either);
5. SIGCONT: every watch resumes from its old resourceVersion, gets 410 Gone (kopf logs the restart of the stream at
   debug level) and re-lists without the Job;
6. the resync forgets the Job (``labrador_operator_cache_forgotten_total{store="jobs"}``) and the operator creates
   it again (a new uid) — only after that, as its log shows.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import (
    Kube,
    bind_claim,
    cluster_mod,
    install_chart,
    one_phase_job,
    scratch_namespace,
    service_account_kubeconfig,
    wait_for,
)

RESYNC_SECONDS = 2
MANAGED = "app.kubernetes.io/managed-by=labrador-operator"


class Operator:
    """``python -m labrador_operator.main`` (this checkout's code) on the ``g-*`` namespaces, logging at debug level
    to ``log``, its metrics on ``metrics_port``."""

    def __init__(self, kubeconfig: Path, log: Path) -> None:
        self.kubeconfig, self.log = kubeconfig, log
        self.metrics_port = cluster_mod.free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LABRADOR_")}
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            PYTHONPATH=os.pathsep.join([str(ROOT / "operator"), env.get("PYTHONPATH", "")]),
            LABRADOR_PROGRESS_INTERVAL="1",
            LABRADOR_CACHE_RESYNC_SECONDS=str(RESYNC_SECONDS),
        )
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "labrador_operator.main", "--namespace=g-*", "--log-level=debug",
                    f"--metrics-port={self.metrics_port}",
                    f"--liveness=http://127.0.0.1:{cluster_mod.free_port()}/healthz",
                ],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def text(self) -> str:
        assert self.proc is not None
        text = self.log.read_text(errors="replace")
        assert self.proc.poll() is None, f"the operator exited ({self.proc.returncode}):\n{text[-5000:]}"
        return text

    def signal(self, sig: int) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)  # a paused process handles no SIGTERM
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def forgotten(self, store: str) -> float:
        """labrador_operator_cache_forgotten_total{store=...} from the metrics endpoint."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        m = re.search(rf'^labrador_operator_cache_forgotten_total\{{store="{store}"\}} (\S+)$', text, re.M)
        return float(m.group(1)) if m else 0.0


def etcd_post(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """etcd's v3 JSON gateway (its client port): no etcdctl needed."""
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def compact_etcd(kube: Kube) -> int:
    """Compact etcd at its current revision (physically); returns the revision."""
    servers = [a.split("=", 1)[1] for a in kube.cluster.argv("kube-apiserver") if a.startswith("--etcd-servers=")]
    url = servers[0].split(",")[0]
    rev = int(etcd_post(url, "/v3/kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"])
    etcd_post(url, "/v3/kv/compaction", {"revision": str(rev), "physical": True})
    # the proof: reading at the revision before is refused
    req = urllib.request.Request(
        url + "/v3/kv/range",
        data=json.dumps({"key": base64.b64encode(b"/").decode(), "revision": str(rev - 1)}).encode(),
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            answer = r.read().decode()
    except urllib.error.HTTPError as e:
        answer = e.read().decode()
    assert "compacted" in answer, answer
    return rev


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory, bin_dir: Path) -> Iterator[Kube]:
    """A control plane of this module's own (its API server is restarted), the chart installed."""
    c = cluster_mod.start(tmp_path_factory.mktemp("ghost-cluster"), nodes=1, bin_dir=bin_dir)
    try:
        yield install_chart(Kube(c))
    finally:
        c.stop()


def _jobs(kube: Kube, ns: str) -> dict[str, dict[str, Any]]:
    out = kube.kubectl("get", "jobs", "-n", ns, "-l", MANAGED, "-o", "json")
    return {j["metadata"]["name"]: j for j in json.loads(out.stdout)["items"]}


def _running_pods(kube: Kube, ns: str) -> list[str]:
    out = json.loads(kube.kubectl("get", "pods", "-n", ns, "-l", MANAGED, "-o", "json").stdout)["items"]
    return [p["metadata"]["name"] for p in out if (p.get("status") or {}).get("phase") == "Running"]


def test_resync_forgets_a_job_deleted_while_the_watch_was_down(own: Kube, tmp_path: Path) -> None:
    kube = own
    kubeconfig = service_account_kubeconfig(kube, tmp_path / "kubeconfig")
    with scratch_namespace(kube, "g") as ns:
        bind_claim(kube, ns, "labrador-workspace")
        first = Operator(kubeconfig, tmp_path / "operator-1.log")
        first.start()
        try:
            kube.apply(one_phase_job("ghost", {"labrador.dev/kwok-hold": "true"}), ns)
            wait_for(lambda: "ghost-only" in _jobs(kube, ns) and _running_pods(kube, ns), timeout=90,
                     what="the phase Job and its pod running")  # fmt: skip
        finally:
            first.stop()
        old_uid = _jobs(kube, ns)["ghost-only"]["metadata"]["uid"]

        op = Operator(kubeconfig, tmp_path / "operator-2.log")
        op.start()
        try:
            # the second process has the Job in its cache (startup LIST) and kopf has listed the Jobs (the one Job
            # of the namespace handled): the watch has a resourceVersion to resume from
            loaded = re.compile(r"cache loaded: .*'jobs': 1,")
            wait_for(lambda: loaded.search(t := op.text()) and "Handler 'on_job' succeeded" in t,
                     timeout=60, what="the operator's cache loaded and the Job listed by kopf")  # fmt: skip

            op.signal(signal.SIGSTOP)
            mark = len(op.log.read_bytes())
            kube.cluster.restart("kube-apiserver")  # the paused operator's watch connections break
            kube.kubectl("delete", "job", "ghost-only", "-n", ns, "--timeout=60s")
            kube.kubectl("create", "configmap", "after-the-deletion", "-n", ns)  # a revision past the deletion
            compact_etcd(kube)
            kube.cluster.restart("kube-apiserver")  # a watch cache that starts after the deletion
            assert "ghost-only" not in _jobs(kube, ns)
            op.signal(signal.SIGCONT)

            def after() -> str:
                return op.log.read_bytes()[mark:].decode(errors="replace")

            relist = re.compile(r"Restarting the watch-stream for jobs\.v1\.batch in '" + re.escape(ns))
            wait_for(lambda: relist.search(after()), timeout=60, what="410 Gone: kopf re-lists the Jobs")
            recreated = wait_for(
                lambda: (j := _jobs(kube, ns).get("ghost-only")) and j["metadata"]["uid"] != old_uid and j,
                timeout=60,
                what="the Job created again once the resync forgot the ghost",
            )
            assert op.forgotten("jobs") >= 1
            log = after()
        finally:
            op.stop()

    # the order in the operator's log: re-listed (the Job not among what exists), the ghost kept until the resync
    # forgot it, and only then the Job created again
    relisted = relist.search(log)
    forgot = re.search(r"resync: forgot \d+ object\(s\) whose deletion the watches missed", log)
    created = re.search(rf"FineTuneJob {re.escape(ns)}/ghost: created Job ghost-only", log)
    assert relisted and forgot and created, log[-5000:]
    assert relisted.start() < forgot.start() < created.start(), log[-5000:]
    assert recreated["metadata"]["uid"] != old_uid
    assert "Traceback" not in log, log[-5000:]
