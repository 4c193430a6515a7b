"""Operator scale benchmark: N FineTuneJobs through Labrador, then N PyTorchJobs of the same shape through Kubeflow's
training-operator v1.8.1 (the Go peer), on one local control plane with 100 kwok fake GPU nodes.

    .venv/bin/python bench/operator_scale.py [--n 1000] [--nodes 100] [--skip-peer]

Per contender it measures apply → children created and apply → pods created (p50/p99; "apply" is the moment the
create request is sent), time until every job Succeeded, jobs/s, API writes by resource and verb (diff of the
apiserver's ``apiserver_request_total``; lines marked ``*`` are the operator's: its own resources, children, status
and the Events it posted — not the scheduler's bindings, kwok's pod status or the Job controller), writes during an
idle window after all jobs finished, and the operator's RSS (now / peak) and CPU seconds from /proc. The last line is
``ratio_jobs_per_s=X.XX writes_per_job=Y.Y p99_create_s=Z.ZZ p99_vs_floor=F.FF rss_mb=W`` (ratio = Labrador /
peer; the other figures are Labrador's; the floor is the time the API server alone takes for the parents and every
child at its measured create rate). The smoke test (tests/integration/test_operator_scale_smoke.py) reuses :func:`run`.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes
from kubernetes.client.rest import ApiException
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
RUN_DURATION = {"labrador.dev/kwok-run-duration": "1s"}
CLAIM = "labrador-workspace"
PEER_CERT_DIR = Path("/tmp/k8s-webhook-server/serving-certs")  # hard-coded in training-operator's cert rotator
PEER_NAMESPACE = "kubeflow"
WriteKey = tuple[str, str, str, str]  # verb, group, resource, subresource


def load_cluster_module() -> ModuleType:
    """hack/cluster.py (not a package) as a module."""
    spec = importlib.util.spec_from_file_location("labrador_hack_cluster", ROOT / "hack" / "cluster.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, mod)
    spec.loader.exec_module(mod)
    return sys.modules[spec.name]


# --- the two contenders --------------------------------------------------------------------------------------------


def finetunejob(name: str) -> dict[str, Any]:
    """Single phase on explicit data, 2 nodes × 1 GPU, evaluation off."""
    return {
        "apiVersion": "labrador.dev/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": "hf://org/model"},
            "data": {"knowledgePath": "data/k.jsonl"},
            "phases": [{"name": "only", "dataset": "knowledge"}],
            "resources": {
                "nodes": 2,
                "gpusPerNode": 1,
                "cpu": "1",
                "memory": "1Gi",
                "podMetadata": {"annotations": dict(RUN_DURATION)},
            },
            "evaluation": {"enabled": False},
        },
    }


def pytorchjob(name: str) -> dict[str, Any]:
    """One master and one worker, 1 GPU each, the same workspace claim and kwok run time as the FineTuneJob."""
    template = {
        "metadata": {"annotations": dict(RUN_DURATION)},
        "spec": {
            "containers": [
                {
                    "name": "pytorch",
                    "image": "ghcr.io/labrador-dev/labrador-trainer:0.1.0",
                    "command": ["torchrun", "-m", "labrador_trainer.cli", "train"],
                    "resources": {
                        "requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"},
                        "limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"},
                    },
                    "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}],
                }
            ],
            "tolerations": [GPU_TOLERATION],
            "volumes": [{"name": "workspace", "persistentVolumeClaim": {"claimName": CLAIM}}],
        },
    }
    replica = {"replicas": 1, "restartPolicy": "OnFailure", "template": template}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {"pytorchReplicaSpecs": {"Master": replica, "Worker": replica}},
    }


def _labrador_succeeded(obj: dict[str, Any]) -> str | None:
    return (obj.get("status") or {}).get("phase")


def _peer_phase(obj: dict[str, Any]) -> str | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("status") == "True" and c.get("type") in ("Succeeded", "Failed"):
            return str(c["type"])
    return None


def _labrador_writes(key: WriteKey) -> bool:
    _, group, resource, sub = key
    return (group, resource) == ("labrador.dev", "finetunejobs") or (
        sub == "" and (group, resource) in {("batch", "jobs"), ("", "services"), ("", "configmaps")}
    )


def _peer_writes(key: WriteKey) -> bool:
    _, group, resource, sub = key
    return (group, resource) == ("kubeflow.org", "pytorchjobs") or (
        sub == "" and (group, resource) in {("", "pods"), ("", "services"), ("scheduling.x-k8s.io", "podgroups")}
    )


@dataclass(frozen=True)
class Contender:
    name: str
    group: str
    version: str
    plural: str
    kind: str
    manifest: Callable[[str], dict[str, Any]]
    phase: Callable[[dict[str, Any]], str | None]  # "Succeeded", "Failed" or anything else
    owns_write: Callable[[WriteKey], bool]
    event_components: frozenset[str]
    pod_parent_annotation: str | None  # pods owned by a Job carry their parent's name here


LABRADOR = Contender(
    "labrador", "labrador.dev", "v1alpha1", "finetunejobs", "FineTuneJob", finetunejob, _labrador_succeeded,
    _labrador_writes, frozenset({"kopf"}), "labrador.dev/owner-name",
)  # fmt: skip
PEER = Contender(
    "training-operator", "kubeflow.org", "v1", "pytorchjobs", "PyTorchJob", pytorchjob, _peer_phase,
    _peer_writes, frozenset({"pytorchjob-controller"}), None,
)  # fmt: skip


# --- the environment -----------------------------------------------------------------------------------------------


@dataclass
class Env:
    """The control plane as the bench sees it: an admin client, kubectl, a directory for logs and certificates."""

    cluster: Any  # hack/cluster.py Cluster
    work: Path
    api: kubernetes.client.ApiClient = field(init=False)

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        cfg = kubernetes.client.Configuration()
        cfg.host, cfg.ssl_ca_cert = self.cluster.server, str(self.cluster.ca)
        cfg.api_key = {"authorization": f"Bearer {self.cluster.token}"}
        cfg.connection_pool_maxsize = 64
        self.api = kubernetes.client.ApiClient(cfg)

    def kubectl(self, *args: str) -> str:
        argv = [str(self.cluster.bin_dir / "kubectl"), f"--kubeconfig={self.cluster.kubeconfig}", *args]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=180)
        if p.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {p.stderr.strip()}")
        return p.stdout

    def write_counts(self) -> Counter[WriteKey]:
        """apiserver_request_total for write verbs, summed over codes, scopes and components."""
        req = urllib.request.Request(self.cluster.server + "/metrics")
        req.add_header("Authorization", f"Bearer {self.cluster.token}")
        ctx = ssl.create_default_context(cafile=str(self.cluster.ca))
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            text = r.read().decode()
        out: Counter[WriteKey] = Counter()
        for fam in text_string_to_metric_families(text):
            if fam.name != "apiserver_request":
                continue
            for s in fam.samples:
                lab = s.labels
                if s.name == "apiserver_request_total" and lab.get("verb") in WRITE_VERBS:
                    key = (lab["verb"], lab.get("group", ""), lab.get("resource", ""), lab.get("subresource", ""))
                    out[key] += int(s.value)
        return out

    def ensure_namespace(self, ns: str) -> None:
        core = kubernetes.client.CoreV1Api(self.api)
        with contextlib.suppress(ApiException):
            core.create_namespace({"metadata": {"name": ns}})
        _wait(lambda: core.list_namespaced_service_account(ns).items, 60, f"default ServiceAccount in {ns}")

    def bind_workspace(self, ns: str) -> None:
        """The workspace claim both contenders' pods mount, bound to a static hostPath volume."""
        core = kubernetes.client.CoreV1Api(self.api)
        pv = f"{CLAIM}-{ns}"
        access, size = ["ReadWriteMany"], {"storage": "10Gi"}
        with contextlib.suppress(ApiException):
            core.create_persistent_volume({
                "metadata": {"name": pv},
                "spec": {"capacity": size, "accessModes": access, "storageClassName": "",
                         "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": f"/tmp/labrador-bench/{pv}"},
                         "claimRef": {"namespace": ns, "name": CLAIM}},
            })  # fmt: skip
        with contextlib.suppress(ApiException):
            core.create_namespaced_persistent_volume_claim(ns, {
                "metadata": {"name": CLAIM},
                "spec": {"accessModes": access, "storageClassName": "", "volumeName": pv,
                         "resources": {"requests": size}},
            })  # fmt: skip
        _wait(
            lambda: core.read_namespaced_persistent_volume_claim(CLAIM, ns).status.phase == "Bound", 60, "claim bound"
        )


def _wait(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def install_crds(env: Env, directory: Path, *names: str) -> None:
    """Apply the CRDs in ``directory`` server-side (the PyTorchJob CRD is too large for client-side apply's
    annotation) and wait until ``names`` are established."""
    env.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(directory))
    ext = kubernetes.client.ApiextensionsV1Api(env.api)

    def established(name: str) -> bool:
        conds = ext.read_custom_resource_definition(name).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conds)

    for name in names:
        _wait(lambda name=name: established(name), 60, f"CRD {name} established")


def build_peer() -> Path:
    """hack/training-operator.sh: the cached binary and CRD directory."""
    script = ROOT / "hack" / "training-operator.sh"
    out = subprocess.run(["bash", str(script)], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def prepare_peer(env: Env, cluster_mod: ModuleType) -> None:
    """What training-operator needs outside a pod: its webhook Secret in ``kubeflow`` (openssl-made, for
    training-operator.kubeflow.svc), a ValidatingWebhookConfiguration for its cert rotator to fill (no webhooks:
    the API server cannot reach a Service here, and Labrador runs without admission webhooks too), and the
    Secret's files in the rotator's certificate directory."""
    env.ensure_namespace(PEER_NAMESPACE)
    certs = cluster_mod.make_serving_cert(
        env.work / "peer-certs", [f"DNS:training-operator.{PEER_NAMESPACE}.svc"], cn="training-operator"
    )
    files = {k: (certs / k).read_text() for k in ("ca.crt", "ca.key", "tls.crt", "tls.key")}
    core = kubernetes.client.CoreV1Api(env.api)
    secret = {"metadata": {"name": "training-operator-webhook-cert"}, "stringData": files}
    try:
        core.create_namespaced_secret(PEER_NAMESPACE, secret)
    except ApiException as e:
        if e.status != 409:
            raise
    current = core.read_namespaced_secret("training-operator-webhook-cert", PEER_NAMESPACE).data or {}
    adm = kubernetes.client.AdmissionregistrationV1Api(env.api)
    with contextlib.suppress(ApiException):
        adm.create_validating_webhook_configuration(
            {"metadata": {"name": "validator.training-operator.kubeflow.org"}, "webhooks": []}
        )
    PEER_CERT_DIR.mkdir(parents=True, exist_ok=True)
    for key in ("tls.crt", "tls.key", "ca.crt"):
        data = base64.b64decode(current[key]).decode() if key in current else files[key]
        (PEER_CERT_DIR / key).write_text(data)


# --- operator processes --------------------------------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    parts = stat[stat.rindex(")") + 2 :].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def cluster_cpu(env: Env) -> dict[str, float]:
    """CPU seconds so far of each control plane process (kube-apiserver, etcd, kwok, ...) by its pid file."""
    pids = Path(env.cluster.dir) / "pids"
    return {f.stem: proc_cpu_seconds(int(f.read_text())) for f in sorted(pids.glob("*.pid"))}


class Operator:
    """An operator as a child process, with /proc readings of its memory and CPU."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.argv, self.env, self.log = argv, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv, env={**os.environ, **self.env}, stdout=out, stderr=subprocess.STDOUT
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.argv[0]} exited:\n{self.log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def memory_mb(self) -> tuple[float, float]:
        """(RSS now, peak RSS) in MiB."""
        assert self.proc is not None
        fields = dict(
            line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines() if ":" in line
        )
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return proc_cpu_seconds(self.proc.pid)


def labrador_operator(env: Env, ns: str, kubeconfig: Path) -> Operator:
    """`labrador-operator` watching ``ns``, with the production defaults (no admission webhooks)."""
    cluster_mod = load_cluster_module()
    port = cluster_mod.free_port()
    exe = Path(sys.executable).with_name("labrador-operator")
    argv = [str(exe), f"--namespace={ns}", "--metrics-port=0", f"--liveness=http://127.0.0.1:{port}/healthz"]
    op = Operator(argv, {"KUBECONFIG": str(kubeconfig), "LABRADOR_WEBHOOK_PORT": "0"}, env.work / f"labrador-{ns}.log")
    op.start()

    def live() -> bool:
        op.check_alive()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    _wait(live, 90, "labrador-operator liveness")
    time.sleep(2)  # indexes filled, watches established
    return op


def peer_operator(env: Env, ns: str, peer_dir: Path, threads: int) -> Operator:
    """training-operator v1.8.1 for PyTorchJobs in ``ns``, as the admin, with its shipped defaults otherwise."""
    cluster_mod = load_cluster_module()
    prepare_peer(env, cluster_mod)
    argv = [
        str(peer_dir / "training-operator.v1"),
        "--enable-scheme=pytorchjob",
        f"--namespace={ns}",
        f"--metrics-bind-address=127.0.0.1:{cluster_mod.free_port()}",
        f"--health-probe-bind-address=127.0.0.1:{cluster_mod.free_port()}",
        f"--webhook-server-port={cluster_mod.free_port()}",
        f"--controller-threads={threads}",
    ]
    op = Operator(argv, {"KUBECONFIG": str(env.cluster.kubeconfig)}, env.work / f"training-operator-{ns}.log")
    op.start()

    def started() -> bool:
        op.check_alive()
        text = op.log.read_text(errors="replace")
        return "Starting workers" in text and "pytorchjob-controller" in text

    _wait(started, 120, "training-operator workers")
    time.sleep(2)
    return op


# --- observation ---------------------------------------------------------------------------------------------------


@dataclass
class Observed:
    """First-seen times (monotonic) of everything the run creates, from watches started before the first apply."""

    parent_done: dict[str, tuple[str, float]] = field(default_factory=dict)  # name -> (phase, when)
    children: dict[str, dict[tuple[str, str], float]] = field(default_factory=dict)  # parent -> (kind, name) -> t
    pods: dict[str, dict[str, float]] = field(default_factory=dict)  # parent -> pod -> t
    lock: threading.Lock = field(default_factory=threading.Lock)


class Watches:
    """Raw (undeserialized) watches on the parents, Jobs, Services, ConfigMaps and Pods of one namespace."""

    def __init__(self, env: Env, c: Contender, ns: str) -> None:
        self.env, self.c, self.ns = env, c, ns
        self.seen = Observed()
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def __enter__(self) -> Watches:
        core, batch = kubernetes.client.CoreV1Api(self.env.api), kubernetes.client.BatchV1Api(self.env.api)
        custom = kubernetes.client.CustomObjectsApi(self.env.api)
        c, ns = self.c, self.ns
        parents = (custom.list_namespaced_custom_object, (c.group, c.version, ns, c.plural))
        for fn, args, handle in (
            (*parents, self._parent),
            (batch.list_namespaced_job, (ns,), self._child("Job")),
            (core.list_namespaced_service, (ns,), self._child("Service")),
            (core.list_namespaced_config_map, (ns,), self._child("ConfigMap")),
            (core.list_namespaced_pod, (ns,), self._pod),
        ):
            ready = threading.Event()
            t = threading.Thread(target=self._loop, args=(fn, args, handle, ready), daemon=True)
            t.start()
            self.threads.append(t)
            if not ready.wait(30):
                raise TimeoutError(f"watch {fn.__name__} did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()

    def _loop(self, fn: Callable[..., Any], args: tuple[Any, ...], handle: Callable[[dict[str, Any]], None],
              ready: threading.Event) -> None:  # fmt: skip
        try:
            listed = fn(*args, _preload_content=False)
            body = json.loads(listed.data)
            for item in body.get("items") or []:
                handle(item)
            rv = body["metadata"]["resourceVersion"]
            ready.set()
            while not self.stop.is_set():
                w = kubernetes.watch.Watch()
                for ev in w.stream(fn, *args, resource_version=rv, timeout_seconds=5, deserialize=False):
                    obj = ev["raw_object"] if "raw_object" in ev else ev["object"]
                    if ev["type"] == "ERROR":
                        raise RuntimeError(f"watch {fn.__name__}: {obj}")
                    rv = obj["metadata"]["resourceVersion"]
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        handle(obj)
                    if self.stop.is_set():
                        w.stop()
        except BaseException as e:  # surfaced by check()
            self.errors.append(e)
            ready.set()

    def check(self) -> None:
        if self.errors:
            raise RuntimeError(f"a watch failed: {self.errors[0]!r}") from self.errors[0]

    def _parent(self, obj: dict[str, Any]) -> None:
        phase = self.c.phase(obj)
        if phase in ("Succeeded", "Failed"):
            with self.seen.lock:
                self.seen.parent_done.setdefault(obj["metadata"]["name"], (phase, time.monotonic()))

    def _child(self, kind: str) -> Callable[[dict[str, Any]], None]:
        def handle(obj: dict[str, Any]) -> None:
            meta = obj["metadata"]
            for ref in meta.get("ownerReferences") or []:
                if ref.get("controller") and ref.get("kind") == self.c.kind:
                    with self.seen.lock:
                        self.seen.children.setdefault(ref["name"], {}).setdefault(
                            (kind, meta["name"]), time.monotonic()
                        )

        return handle

    def _pod(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        parent = None
        if self.c.pod_parent_annotation:
            parent = (meta.get("annotations") or {}).get(self.c.pod_parent_annotation)
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == self.c.kind:
                parent = ref["name"]
                self._child("Pod")(obj)
        if parent:
            with self.seen.lock:
                self.seen.pods.setdefault(parent, {}).setdefault(meta["name"], time.monotonic())


# --- one run -------------------------------------------------------------------------------------------------------


@dataclass
class Result:
    contender: str
    n: int
    apply_s: float
    create_p50: float
    create_p99: float
    pods_p50: float
    pods_p99: float
    all_done_s: float
    jobs_per_s: float
    succeeded: int
    failed: list[str]
    writes: Counter[WriteKey]
    events: Counter[str]  # reporting component -> writes
    operator_writes: int
    idle_s: float
    idle_operator_writes: int
    idle_detail: Counter[str]  # the operator's idle writes by "VERB resource" or "event:<component>"
    rss_mb: float
    peak_rss_mb: float
    cpu_s: float
    children: int  # children seen, all jobs
    cluster_cpu_s: dict[str, float]  # control plane process -> CPU seconds during the run
    restart: Restart | None = None
    api_create_rate: float = float("inf")  # creates/s of the API server alone (calibrate_create_rate)

    @property
    def create_rate(self) -> float:
        """Creates/s the API server took from the bench's own apply of the parents (16 client threads), while the
        operator was already creating children."""
        return self.n / self.apply_s if self.apply_s else float("inf")

    @property
    def children_floor_s(self) -> float:
        """The parents and every child all go through the API server: at its rate alone (nothing else running, the
        cheapest object) they take at least this long — no operator's last children can come sooner."""
        return (self.n + self.children) / self.api_create_rate

    @property
    def writes_per_job(self) -> float:
        return self.operator_writes / self.n


def _percentile(values: list[float], q: int) -> float:
    """The q-th percentile (1..99), interpolated between samples."""
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _event_writes(env: Env, ns: str) -> Counter[str]:
    """Event writes by reporting component: one create plus one patch per repeat of an aggregated Event."""
    out: Counter[str] = Counter()
    for ev in kubernetes.client.CoreV1Api(env.api).list_namespaced_event(ns).items:
        who = ev.reporting_component or (ev.source.component if ev.source else "") or "?"
        series = ev.series.count if ev.series and ev.series.count else 0
        out[who] += max(ev.count or 1, series or 1)
    return out


def _own_detail(c: Contender, writes: Counter[WriteKey], events: Counter[str]) -> Counter[str]:
    out: Counter[str] = Counter()
    for (verb, group, resource, sub), v in writes.items():
        if c.owns_write((verb, group, resource, sub)) and v > 0:
            out[f"{verb} {resource}{'.' + group if group else ''}{'/' + sub if sub else ''}"] += v
    for who, v in events.items():
        if who in c.event_components and v > 0:
            out[f"event:{who}"] += v
    return out


def _operator_writes(c: Contender, writes: Counter[WriteKey], events: Counter[str], n_applied: int) -> int:
    own = sum(v for k, v in writes.items() if c.owns_write(k))
    own -= n_applied  # the bench's own creates of the parents
    return own + sum(v for who, v in events.items() if who in c.event_components)


@dataclass
class Restart:
    """A fresh operator process over the finished jobs: until its CPU goes quiet."""

    wall_s: float
    cpu_s: float
    rss_mb: float
    peak_rss_mb: float
    operator_writes: int


def measure_restart(env: Env, c: Contender, ns: str, start_operator: Callable[[], Operator]) -> Restart:
    before, events0, t0 = env.write_counts(), _event_writes(env, ns), time.monotonic()
    op = start_operator()
    try:
        quiet, last = 0, op.cpu_seconds()
        while quiet < 3 and time.monotonic() - t0 < 900:  # 3 s in a row under 5 % of a core
            time.sleep(1)
            now = op.cpu_seconds()
            quiet = quiet + 1 if now - last < 0.05 else 0
            last = now
        wall, cpu = time.monotonic() - t0 - 3, op.cpu_seconds()
        rss, peak = op.memory_mb()
        writes = _operator_writes(c, env.write_counts() - before, _event_writes(env, ns) - events0, 0)
    finally:
        op.stop()
    return Restart(wall_s=wall, cpu_s=cpu, rss_mb=rss, peak_rss_mb=peak, operator_writes=writes)


def calibrate_create_rate(env: Env, ns: str, n: int, workers: int = 16) -> float:
    """Creates/s the API server takes on its own: ``n`` small ConfigMaps from ``workers`` threads (as the bench
    applies its jobs), before any operator runs; deleted again."""
    core = kubernetes.client.CoreV1Api(env.api)
    label = "labrador.dev/bench-calibration"

    def make(i: int) -> None:
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"calibrate-{i:05d}", "labels": {label: "1"}}})

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(make, range(n)))
    rate = n / (time.monotonic() - t0)
    core.delete_collection_namespaced_config_map(ns, label_selector=label)
    return rate


def run(
    env: Env,
    c: Contender,
    n: int,
    ns: str,
    start_operator: Callable[[], Operator],
    *,
    timeout_s: float = 1800,
    settle_s: float = 5,
    idle_s: float = 30,
    apply_workers: int = 16,
    restart_after: bool = False,
) -> Result:
    """Prepare ``ns`` (claim), start the operator, apply ``n`` jobs at once, wait until all finished, measure."""
    env.ensure_namespace(ns)
    env.bind_workspace(ns)
    api_create_rate = calibrate_create_rate(env, ns, n, apply_workers)
    op = start_operator()
    try:
        names = [f"{c.plural[:3]}-{i:05d}" for i in range(n)]
        custom = kubernetes.client.CustomObjectsApi(env.api)
        with Watches(env, c, ns) as w:
            before, cpu0, cluster0 = env.write_counts(), op.cpu_seconds(), cluster_cpu(env)
            events0 = _event_writes(env, ns)
            sent: dict[str, float] = {}

            def apply(name: str) -> None:
                sent[name] = time.monotonic()
                custom.create_namespaced_custom_object(c.group, c.version, ns, c.plural, c.manifest(name))

            t0 = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(apply_workers) as pool:
                list(pool.map(apply, names))
            apply_s = time.monotonic() - t0
            deadline = t0 + timeout_s
            while len(w.seen.parent_done) < n:
                w.check()
                op.check_alive()
                if time.monotonic() > deadline:
                    missing = sorted(set(names) - set(w.seen.parent_done))
                    raise TimeoutError(f"{c.name}: {len(missing)} of {n} jobs not finished after {timeout_s}s: "
                                       f"{missing[:10]}")  # fmt: skip
                time.sleep(0.2)
            done_at = max(t for _, t in w.seen.parent_done.values())
            time.sleep(settle_s)  # trailing writes of the last transitions belong to the lifecycle
            after, cpu1, cluster1 = env.write_counts(), op.cpu_seconds(), cluster_cpu(env)
            events1 = _event_writes(env, ns)
            rss, peak = op.memory_mb()
            time.sleep(idle_s)
            idle_writes = env.write_counts() - after
            idle_events = _event_writes(env, ns) - events1
            w.check()
            seen = w.seen
    finally:
        op.stop()
    restart = measure_restart(env, c, ns, start_operator) if restart_after else None

    creates = sorted(max(seen.children[x].values()) - sent[x] for x in names if seen.children.get(x))
    pods = sorted(max(seen.pods[x].values()) - sent[x] for x in names if seen.pods.get(x))
    writes = after - before
    events = events1 - events0
    total = done_at - t0
    return Result(
        contender=c.name,
        n=n,
        apply_s=apply_s,
        create_p50=_percentile(creates, 50),
        create_p99=_percentile(creates, 99),
        pods_p50=_percentile(pods, 50),
        pods_p99=_percentile(pods, 99),
        all_done_s=total,
        jobs_per_s=n / total,
        succeeded=sum(1 for p, _ in seen.parent_done.values() if p == "Succeeded"),
        failed=sorted(x for x, (p, _) in seen.parent_done.items() if p != "Succeeded"),
        writes=writes,
        events=events,
        operator_writes=_operator_writes(c, writes, events, n),
        idle_s=idle_s,
        idle_operator_writes=_operator_writes(c, idle_writes, idle_events, 0),
        idle_detail=_own_detail(c, idle_writes, idle_events),
        rss_mb=rss,
        peak_rss_mb=peak,
        cpu_s=cpu1 - cpu0,
        children=sum(len(v) for v in seen.children.values()),
        cluster_cpu_s={k: round(v - cluster0.get(k, 0.0), 1) for k, v in cluster1.items()},
        restart=restart,
        api_create_rate=api_create_rate,
    )


# --- correctness (the smoke test) ------------------------------------------------------------------------------------


def child_problems(env: Env, c: Contender, ns: str, expected: dict[str, int]) -> list[str]:
    """Duplicate, missing or orphaned children of ``c``'s jobs in ``ns``: every object the operator made (controller
    owner of kind ``c.kind``) must point at a live parent with that uid, and each parent must have exactly
    ``expected[kind]`` children of each kind."""
    custom = kubernetes.client.CustomObjectsApi(env.api)
    core, batch = kubernetes.client.CoreV1Api(env.api), kubernetes.client.BatchV1Api(env.api)
    parents = {
        p["metadata"]["uid"]: p["metadata"]["name"]
        for p in custom.list_namespaced_custom_object(c.group, c.version, ns, c.plural)["items"]
    }
    per_parent: dict[str, Counter[str]] = {uid: Counter() for uid in parents}
    problems = []
    listings = {
        "Job": batch.list_namespaced_job(ns).items,
        "Service": core.list_namespaced_service(ns).items,
        "ConfigMap": core.list_namespaced_config_map(ns).items,
        "Pod": core.list_namespaced_pod(ns).items,
    }
    for kind, items in listings.items():
        for obj in items:
            for ref in obj.metadata.owner_references or []:
                if not (ref.controller and ref.kind == c.kind):
                    continue
                if ref.uid not in parents:
                    problems.append(f"orphaned {kind} {obj.metadata.name} (owner {ref.name} {ref.uid} is gone)")
                else:
                    per_parent[ref.uid][kind] += 1
    for uid, counts in per_parent.items():
        for kind, want in expected.items():
            if counts[kind] != want:
                problems.append(f"{c.kind} {parents[uid]}: {counts[kind]} {kind} children, expected {want}")
    return problems


# --- report --------------------------------------------------------------------------------------------------------


def report(r: Result, c: Contender) -> str:
    lines = [
        f"== {r.contender}: N={r.n}",
        f"  apply (all creates sent)     {r.apply_s:8.2f} s",
        f"  apply -> children created    p50 {r.create_p50:6.2f} s   p99 {r.create_p99:6.2f} s",
        f"  apply -> pods created        p50 {r.pods_p50:6.2f} s   p99 {r.pods_p99:6.2f} s",
        f"  all finished                 {r.all_done_s:8.2f} s   ({r.succeeded} Succeeded, {len(r.failed)} Failed)",
        f"  throughput                   {r.jobs_per_s:8.2f} jobs/s",
        f"  operator writes              {r.operator_writes} ({r.writes_per_job:.1f} per job, events included)",
        f"  idle writes after the run    {r.idle_operator_writes} in {r.idle_s:.0f} s {dict(r.idle_detail) or ''}",
        f"  operator RSS                 {r.rss_mb:.0f} MiB now, {r.peak_rss_mb:.0f} MiB peak",
        f"  operator CPU                 {r.cpu_s:.1f} s",
        f"  control plane CPU            {sum(r.cluster_cpu_s.values()):.1f} s "
        f"{dict(sorted(r.cluster_cpu_s.items(), key=lambda kv: -kv[1]))}",
        f"  API server create rate       {r.api_create_rate:.0f}/s alone ({r.n} ConfigMaps before the run; the "
        f"parents went in at {r.create_rate:.0f}/s) -> {r.n} parents + {r.children} children take "
        f">= {r.children_floor_s:.2f} s (floor for 'children created')",
        "  API writes per job (verb resource[/subresource]; * = the operator's):",
    ]
    for key, v in sorted(r.writes.items(), key=lambda kv: (-kv[1], kv[0])):
        verb, group, resource, sub = key
        res = f"{resource}.{group}" if group else resource
        mark = "*" if c.owns_write(key) else " "
        lines.append(f"   {mark} {v / r.n:7.2f}  {verb:6} {res}{'/' + sub if sub else ''}")
    lines.append("  Events by reporting component (writes per job):")
    for who, v in sorted(r.events.items(), key=lambda kv: -kv[1]):
        mark = "*" if who in c.event_components else " "
        lines.append(f"   {mark} {v / r.n:7.2f}  {who}")
    if r.restart:
        x = r.restart
        lines.append(
            f"  restart over {r.n} finished jobs: busy {x.wall_s:.1f} s, CPU {x.cpu_s:.1f} s, "
            f"RSS {x.rss_mb:.0f} MiB ({x.peak_rss_mb:.0f} peak), {x.operator_writes} operator writes"
        )
    if r.failed:
        lines.append(f"  FAILED: {r.failed[:20]}")
    return "\n".join(lines)


def summary_line(lab: Result, peer: Result | None) -> str:
    ratio = lab.jobs_per_s / peer.jobs_per_s if peer else float("nan")
    return (
        f"ratio_jobs_per_s={ratio:.2f} writes_per_job={lab.writes_per_job:.1f} "
        f"p99_create_s={lab.create_p99:.2f} p99_vs_floor={lab.create_p99 / lab.children_floor_s:.2f} "
        f"rss_mb={lab.peak_rss_mb:.0f}"
    )


@contextlib.contextmanager
def control_plane(work: Path, nodes: int, keep: bool) -> Iterator[Any]:
    cluster_mod = load_cluster_module()
    c = cluster_mod.start(work / "cluster", nodes=nodes, cpu_nodes=0)
    try:
        yield c
    finally:
        if not keep:
            c.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="jobs per contender")
    p.add_argument("--nodes", type=int, default=100, help="kwok fake GPU nodes (8 GPUs each)")
    p.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "labrador-bench-scale",
                   help="state, logs, certificates (emptied first)")  # fmt: skip
    p.add_argument("--skip-peer", action="store_true", help="Labrador only (no ratio)")
    p.add_argument("--peer-threads", type=int, default=1, help="training-operator --controller-threads (shipped: 1)")
    p.add_argument("--idle", type=float, default=30, help="seconds of idle after the run to count steady writes")
    p.add_argument("--timeout", type=float, default=1800, help="per contender, seconds until all jobs finished")
    p.add_argument("--keep", action="store_true", help="leave the control plane running")
    p.add_argument("--restart", action="store_true",
                   help="then a fresh operator over the finished jobs: CPU, RSS, writes until quiet")  # fmt: skip
    a = p.parse_args(argv)

    from labrador_trainer.hardware import host_line

    print(host_line(gemm=False), flush=True)  # the control plane and the operators are plain CPU work
    peer_dir = None if a.skip_peer else build_peer()
    shutil.rmtree(a.dir, ignore_errors=True)
    t = time.monotonic()
    with control_plane(a.dir, a.nodes, a.keep) as cluster:
        env = Env(cluster, a.dir)
        install_crds(env, ROOT / "crds", "finetunejobs.labrador.dev")
        if peer_dir is not None:
            install_crds(env, peer_dir / "crds", "pytorchjobs.kubeflow.org")
        print(f"control plane with {a.nodes} fake GPU nodes up in {time.monotonic() - t:.0f}s", flush=True)
        kw = {"timeout_s": a.timeout, "idle_s": a.idle, "restart_after": a.restart}
        lab = run(env, LABRADOR, a.n, "bench-labrador",
                  lambda: labrador_operator(env, "bench-labrador", cluster.kubeconfig), **kw)  # fmt: skip
        print(report(lab, LABRADOR), flush=True)
        peer = None
        if peer_dir is not None:
            peer = run(env, PEER, a.n, "bench-peer",
                       lambda: peer_operator(env, "bench-peer", peer_dir, a.peer_threads), **kw)  # fmt: skip
            print(report(peer, PEER), flush=True)
            print(f"== Labrador / training-operator: jobs/s x{lab.jobs_per_s / peer.jobs_per_s:.2f}, "
                  f"writes/job {lab.writes_per_job:.1f} vs {peer.writes_per_job:.1f}, "
                  f"p99 create {lab.create_p99:.2f} vs {peer.create_p99:.2f} s, "
                  f"peak RSS {lab.peak_rss_mb:.0f} vs {peer.peak_rss_mb:.0f} MiB, "
                  f"CPU {lab.cpu_s:.1f} vs {peer.cpu_s:.1f} s", flush=True)  # fmt: skip
        print(summary_line(lab, peer), flush=True)
    return 1 if lab.failed or (peer and peer.failed) else 0


if __name__ == "__main__":
    raise SystemExit(main())
