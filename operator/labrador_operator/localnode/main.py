"""labrador-local: registers a Node and runs the pods bound to it as local processes (see docs/local-runner.md).

    labrador-local [--node-name labrador-local] [--gpus 0] [--max-parallel 4] [--taint key=value:NoSchedule]

Restart policy of the agent itself: pods it was running when it stopped (they carry a startTime) are marked
Failed with a DisruptionTarget condition, never re-run in place; pods it had not started yet are run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labrador_operator.localnode.kube import ApiError, Kube, pod_path
from labrador_operator.localnode.node import NodeAgent, NodeSpec, parse_taint
from labrador_operator.localnode.pods import PodWorker, process_start
from labrador_operator.localnode.status import condition, now

log = logging.getLogger("labrador.local")
Obj = dict[str, Any]
HEARTBEAT_SECONDS = 10.0
WATCH_SECONDS = 60
PASS_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "VIRTUAL_ENV")
RESOURCE_PATHS = {
    "Secret": "/api/v1/namespaces/{ns}/secrets/{name}",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps/{name}",
    "PersistentVolumeClaim": "/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}",
}


@dataclass
class Config:
    node_name: str
    state_dir: Path
    log_dir: Path
    volume_root: Path
    max_parallel: int = 4
    host_ip: str = "127.0.0.1"
    restart_backoff: float = 10.0
    shutdown_grace: float = 30.0
    honour_users: bool = True
    base_env: dict[str, str] = field(default_factory=dict)
    allocatable: dict[str, str] = field(default_factory=dict)


class IpPool:
    """Pod IPs 127.0.0.2-254: all loopback on Linux, so a pod can bind its metrics port on its own IP."""

    def __init__(self, first: int = 2, last: int = 254) -> None:
        self._free = [f"127.0.0.{i}" for i in range(first, last + 1)]
        self._lock = threading.Lock()

    def acquire(self) -> str | None:
        with self._lock:
            return self._free.pop(0) if self._free else None

    def release(self, ip: str) -> None:
        with self._lock:
            if ip not in self._free:
                self._free.append(ip)


def sandbox_problem() -> str | None:
    """Why per-pod mount namespaces cannot be made here (None when they can)."""
    try:
        p = subprocess.run(["unshare", "--mount", "--uts", "--propagation", "private", "--", "true"],
                           capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"the node cannot make per-pod mount namespaces (unshare: {e})"
    if p.returncode != 0:
        why = p.stderr.strip() or f"exit {p.returncode}"
        return f"the node cannot make per-pod mount namespaces (unshare: {why}); run labrador-local as root"
    return None


class Agent:
    """Watches the pods bound to the node and gives each a PodWorker."""

    def __init__(self, kube: Kube, cfg: Config, node: NodeAgent) -> None:
        self.kube, self.cfg, self.node = kube, cfg, node
        self.slots = threading.BoundedSemaphore(cfg.max_parallel)
        self.ips = IpPool()
        self.workers: dict[str, PodWorker] = {}
        self.finished: set[str] = set()
        self.deleted: set[str] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        problem = sandbox_problem()
        self.host_refusals = [problem] if problem else []
        server = urllib.parse.urlsplit(kube.server)
        host, port = server.hostname or "127.0.0.1", str(server.port or 443)
        self.service_env = {
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://{host}:{port}",
            f"KUBERNETES_PORT_{port}_TCP": f"tcp://{host}:{port}",
            f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp",
            f"KUBERNETES_PORT_{port}_TCP_PORT": port,
            f"KUBERNETES_PORT_{port}_TCP_ADDR": host,
        }

    # --- services for workers ----------------------------------------------------------------------------------
    def resolve(self, kind: str, namespace: str, name: str) -> Obj | None:
        obj = self.kube.get(RESOURCE_PATHS[kind].format(ns=namespace, name=name))
        if obj is not None:
            obj.setdefault("kind", kind)
        return obj

    def token(self, pod: Obj, service_account: str, audience: str | None, expiration: int) -> str:
        meta = pod["metadata"]
        body = {
            "spec": {
                "audiences": [audience] if audience else [],
                "expirationSeconds": expiration,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
            }
        }
        path = f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{service_account}/token"
        return self.kube.request("POST", path, body)["status"]["token"]

    def annotate(self, pod: Obj, annotations: dict[str, str]) -> None:
        meta = pod["metadata"]
        with contextlib.suppress(ApiError):
            self.kube.patch(pod_path(meta["namespace"], meta["name"]),
                            {"metadata": {"uid": meta["uid"], "annotations": annotations}})  # fmt: skip

    def event(self, pod: Obj, reason: str, message: str, warning: bool = False) -> None:
        meta = pod["metadata"]
        t = now()
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"]},
            "reason": reason, "message": message[:1024], "type": "Warning" if warning else "Normal",
            "source": {"component": "labrador-local", "host": self.cfg.node_name},
            "firstTimestamp": t, "lastTimestamp": t, "count": 1,
        }  # fmt: skip
        try:
            self.kube.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body)
        except Exception as e:  # events are best effort
            log.debug("event %s for %s/%s not posted: %s", reason, meta["namespace"], meta["name"], e)

    def finalize_deletion(self, pod: Obj) -> None:
        """The kubelet's last word on a deleted pod: delete it with grace 0 once its containers are stopped."""
        meta = pod["metadata"]
        with self.lock:
            if meta["uid"] in self.deleted:
                return
            self.deleted.add(meta["uid"])
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
        try:
            self.kube.request("DELETE", pod_path(meta["namespace"], meta["name"]), body)
        except ApiError as e:
            if e.status not in (404, 409):
                log.warning("deleting pod %s/%s: %s", meta["namespace"], meta["name"], e)

    def worker_done(self, worker: PodWorker) -> None:
        with self.lock:
            self.finished.add(worker.uid)
            self.workers.pop(worker.uid, None)

    # --- the pod watch -----------------------------------------------------------------------------------------
    def handle(self, event_type: str, pod: Obj) -> None:
        meta, status = pod["metadata"], pod.get("status") or {}
        uid = meta["uid"]
        with self.lock:
            worker = self.workers.get(uid)
            if event_type == "DELETED":
                self.finished.discard(uid)
                self.deleted.discard(uid)
                if worker:
                    worker.request_stop("gone", 2.0)
                return
            if worker:
                worker.observe(pod)
                return
            if self.stopping.is_set():
                return
            terminal = status.get("phase") in ("Succeeded", "Failed")
            if uid in self.finished or terminal:
                pass  # nothing to run; a deleted terminal pod is finalised below
            elif meta.get("deletionTimestamp"):
                pass  # never started here
            elif status.get("startTime"):
                self._mark_lost(pod)
                self.finished.add(uid)
                return
            else:
                worker = PodWorker(self, pod)
                self.workers[uid] = worker
                worker.start()
                return
        if meta.get("deletionTimestamp"):
            self.finalize_deletion(pod)

    def _mark_lost(self, pod: Obj) -> None:
        """A pod this node started before the agent restarted: its process is gone; fail it as a disruption."""
        meta = pod["metadata"]
        msg = "labrador-local restarted while this pod was running; pods are not re-run in place"
        statuses = [
            {**cs, "ready": False, "started": False,
             "state": {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown", "message": msg,
                                      "finishedAt": now()}}}
            for cs in (pod.get("status") or {}).get("containerStatuses") or []
            if "terminated" not in cs.get("state", {})
        ]  # fmt: skip
        body: Obj = {
            "metadata": {"uid": meta["uid"]},
            "status": {
                "phase": "Failed",
                "reason": "NodeRestarted",
                "message": msg,
                "conditions": [
                    condition("DisruptionTarget", True, "TerminationByKubelet", msg),
                    condition("Ready", False, "PodFailed"),
                    condition("ContainersReady", False, "PodFailed"),
                ],
            },
        }
        if statuses:
            body["status"]["containerStatuses"] = statuses
        log.warning("pod %s/%s was running before this agent started: marked Failed", meta["namespace"], meta["name"])
        with contextlib.suppress(ApiError):
            self.kube.patch(pod_path(meta["namespace"], meta["name"], "status"), body)

    def watch_pods(self) -> None:
        selector = f"spec.nodeName={self.cfg.node_name}"
        rv = ""
        while not self.stopping.is_set():
            try:
                if not rv:
                    listing = self.kube.request("GET", "/api/v1/pods", params={"fieldSelector": selector})
                    rv = listing["metadata"]["resourceVersion"]
                    for pod in listing["items"]:
                        self.handle("ADDED", pod)
                params = {"fieldSelector": selector, "resourceVersion": rv, "allowWatchBookmarks": "true"}
                for ev in self.kube.watch("/api/v1/pods", params, timeout=WATCH_SECONDS):
                    if self.stopping.is_set():
                        return
                    obj = ev.get("object") or {}
                    if ev["type"] == "ERROR":
                        rv = "" if obj.get("code") == 410 else rv
                        break
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if ev["type"] != "BOOKMARK":
                        self.handle(ev["type"], obj)
            except Exception as e:
                if self.stopping.is_set():
                    return
                log.warning("pod watch interrupted (%s); relisting", e)
                rv = ""
                self.stopping.wait(1.0)

    # --- start and stop ----------------------------------------------------------------------------------------
    def kill_orphans(self) -> None:
        """Processes a previous agent (killed without cleanup) left running: stopped before anything else."""
        for record in (self.cfg.state_dir / "pods").glob("*/process.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                info = json.loads(record.read_text())
                if process_start(info["pid"]) == info["start"] and info["start"]:
                    log.warning("stopping pod %s's process %d left by a previous agent", info["pod"], info["pid"])
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(info["pid"], signal.SIGKILL)
            shutil.rmtree(record.parent, ignore_errors=True)

    def heartbeats(self) -> None:
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            try:
                self.node.heartbeat(True)
            except Exception as e:
                log.warning("node heartbeat failed: %s", e)

    def run(self) -> None:
        self.kill_orphans()
        self.node.register()
        log.info("node %s registered; running up to %d pods", self.cfg.node_name, self.cfg.max_parallel)
        if self.host_refusals:
            log.error("%s: every pod will be refused", self.host_refusals[0])
        threading.Thread(target=self.heartbeats, name="heartbeat", daemon=True).start()
        watcher = threading.Thread(target=self.watch_pods, name="watch", daemon=True)
        watcher.start()
        while not self.stopping.wait(0.5):
            pass
        self.shutdown()

    def shutdown(self) -> None:
        """Stop every pod (SIGTERM, grace, SIGKILL; reported Failed with DisruptionTarget), mark the node NotReady."""
        with self.lock:
            workers = list(self.workers.values())
        for w in workers:
            grace = float((w.pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
            w.request_stop("shutdown", min(grace, self.cfg.shutdown_grace))
        for w in workers:
            w.join(timeout=self.cfg.shutdown_grace + 15)
        try:
            self.node.heartbeat(False, "labrador-local stopped")
        except Exception as e:
            log.warning("could not mark node NotReady: %s", e)
        log.info("stopped (%d pods stopped)", len(workers))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    home = Path.home()
    p = argparse.ArgumentParser(prog="labrador-local", description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"), help="default: $KUBECONFIG, ~/.kube/config")
    p.add_argument("--context", default=None)
    p.add_argument("--node-name", default="labrador-local")
    p.add_argument("--gpus", type=int, default=0, help="nvidia.com/gpu capacity to advertise")
    p.add_argument("--max-parallel", type=int, default=4, help="pods run at the same time (others wait Pending)")
    p.add_argument("--max-pods", type=int, default=110, help="the node's pod capacity for the scheduler")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="extra node label")
    p.add_argument("--taint", action="append", default=[], metavar="KEY[=VALUE]:EFFECT", help="node taint")
    p.add_argument("--log-dir", type=Path, default=home / ".local/state/labrador/logs",
                   help="container logs: <dir>/<namespace>/<pod>/<container>.log")  # fmt: skip
    p.add_argument("--volume-root", type=Path, default=home / ".local/share/labrador/volumes",
                   help="PVCs: <dir>/<namespace>/<claim>")  # fmt: skip
    p.add_argument("--state-dir", type=Path, default=None,
                   help="per-pod scratch (default ~/.local/state/labrador/<node>)")  # fmt: skip
    p.add_argument("--pass-env", action="append", default=[], metavar="NAME",
                   help=f"host variable every container gets (besides {', '.join(PASS_ENV)})")  # fmt: skip
    p.add_argument("--restart-backoff", type=float, default=10.0, help="first back-off for restarts (doubles, ≤300s)")
    p.add_argument("--shutdown-grace", type=float, default=30.0, help="longest grace given to pods on shutdown")
    p.add_argument("--run-as-agent-user", action="store_true",
                   help="ignore runAsUser/runAsGroup/fsGroup: run containers as the agent's user "
                        "(where the pod's user cannot read the interpreter, e.g. a venv under /root)")  # fmt: skip
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = _parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)  # fmt: skip
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    labels = dict(kv.split("=", 1) for kv in a.label)
    node_spec = NodeSpec(a.node_name, gpus=a.gpus, max_pods=a.max_pods, labels=labels,
                         taints=[parse_taint(t) for t in a.taint])  # fmt: skip
    kube = Kube(a.kubeconfig, a.context)
    cfg = Config(
        node_name=a.node_name,
        state_dir=(a.state_dir or Path.home() / ".local/state/labrador" / a.node_name).resolve(),
        log_dir=a.log_dir.resolve(),
        volume_root=a.volume_root.resolve(),
        max_parallel=a.max_parallel,
        restart_backoff=a.restart_backoff,
        shutdown_grace=a.shutdown_grace,
        honour_users=not a.run_as_agent_user,
        base_env={k: os.environ[k] for k in (*PASS_ENV, *a.pass_env) if k in os.environ},
        allocatable=node_spec.capacity(),
    )
    for d in (cfg.state_dir / "pods", cfg.log_dir, cfg.volume_root):
        d.mkdir(parents=True, exist_ok=True)
    agent = Agent(kube, cfg, NodeAgent(kube, node_spec))

    def stop(signum: int, _frame: object) -> None:
        log.info("%s: stopping pods and marking the node NotReady", signal.Signals(signum).name)
        agent.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    started = dt.datetime.now(dt.UTC)
    agent.run()
    log.info("ran for %.0fs", (dt.datetime.now(dt.UTC) - started).total_seconds())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
