#!/usr/bin/env python3
"""Labrador's local control plane: real etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok.

Everything listens on loopback. Certificates are made with openssl, clients authenticate with static tokens,
RBAC is on, service-account tokens are signed with a generated key pair. kwok plays the kubelet for fake GPU nodes
(``nvidia.com/gpu: 8`` and a ``nvidia.com/gpu`` NoSchedule taint) and drives pods through hack/kwok-stages.yaml.

    python hack/cluster.py up   [--dir .cluster] [--nodes 2]   # start, print the kubeconfig path
    python hack/cluster.py down [--dir .cluster]                # stop everything started by `up`
    python hack/cluster.py env  [--dir .cluster]                # print `export KUBECONFIG=...` and PATH

Binaries come from hack/build-control-plane.sh (built once, cached under ~/.cache/labrador/bin/). The pytest
fixture in tests/conftest.py imports this module and calls :func:`start` / :meth:`Cluster.stop`.
Only the Python standard library is used, so it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

HACK = Path(__file__).resolve().parent
ROOT = HACK.parent
ADMIN_TOKEN_FILE = "admin.token"
#: start order (stopped in reverse): loopback forwarders, control plane, kwok, then the real node's parts
COMPONENTS = (
    "fwd-api-ns", "fwd-api-host", "fwd-registry-ns", "fwd-registry-host",
    "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok",
    "registry", "containerd", "kubelet", "kube-proxy", "coredns",
)  # fmt: skip


def build_binaries(env: dict[str, str] | None = None) -> Path:
    """Build or reuse the pinned binaries; return the directory that holds them all."""
    out = subprocess.run(
        ["bash", str(HACK / "build-control-plane.sh")],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return Path(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_pki(pki: Path) -> None:
    """CA, apiserver serving cert (127.0.0.1/localhost), service-account key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    if (pki / "apiserver.crt").exists():
        return
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "3650",
        "-subj",
        "/CN=labrador-local-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        cwd=pki,
    )
    (pki / "apiserver.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,"
        # the `kubernetes` Service IP and the real node's address (hack/node.py), for in-cluster clients
        "IP:10.96.0.1,IP:10.243.0.2\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "apiserver.key",
        "-out",
        "apiserver.csr",
        "-subj",
        "/CN=kube-apiserver",
        cwd=pki,
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        "apiserver.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "apiserver.crt",
        "-days",
        "3650",
        "-extfile",
        "apiserver.ext",
        cwd=pki,
    )
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def make_kubelet_client_cert(pki: Path) -> None:
    """The API server's client certificate for kubelets (exec, logs): system:masters, signed by the cluster CA."""
    if (pki / "kubelet-client.crt").exists():
        return
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "kubelet-client.key", "-out", "kubelet-client.csr",
             "-subj", "/O=system:masters/CN=kube-apiserver-kubelet-client", cwd=pki)  # fmt: skip
    (pki / "client.ext").write_text("keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n")
    _openssl("x509", "-req", "-in", "kubelet-client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "kubelet-client.crt", "-days", "3650", "-extfile", "client.ext", cwd=pki)  # fmt: skip


def make_serving_cert(out: Path, sans: list[str], cn: str = "labrador-webhook") -> Path:
    """A CA and a serving certificate for ``sans`` (IP:... or DNS:...) as tls.crt, tls.key, ca.crt in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "365",
        "-subj",
        f"/CN={cn}-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        cwd=out,
    )
    (out / "server.ext").write_text(
        f"subjectAltName={','.join(sans)}\nkeyUsage=critical,digitalSignature,"
        "keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "tls.key",
        "-out",
        "server.csr",
        "-subj",
        f"/CN={cn}",
        cwd=out,
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "tls.crt",
        "-days",
        "365",
        "-extfile",
        "server.ext",
        cwd=out,
    )
    return out


def write_kubeconfig(path: Path, server: str, ca: Path, token: str, user: str = "admin") -> None:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "labrador-local", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "labrador-local", "context": {"cluster": "labrador-local", "user": user}}],
        "current-context": "labrador-local",
    }
    path.write_text(json.dumps(cfg, indent=2))  # JSON is YAML; no PyYAML needed here


def fake_gpu_node(name: str, gpus: int = 8) -> dict:
    node = fake_cpu_node(name)
    node["metadata"]["labels"].update(
        {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    )
    node["spec"] = {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]}
    for key in ("allocatable", "capacity"):
        node["status"][key]["nvidia.com/gpu"] = str(gpus)
    return node


def fake_cpu_node(name: str) -> dict:
    """A node without GPUs or taints, for CPU-only pods (taxonomy sync, mixing)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": "64", "memory": "1Ti", "pods": "250"},
            "capacity": {"cpu": "64", "memory": "1Ti", "pods": "250"},
        },
    }


@dataclass
class Cluster:
    dir: Path
    bin_dir: Path
    server: str
    kubeconfig: Path
    token: str
    ca: Path
    pids: dict[str, int] = field(default_factory=dict)
    #: the real node's loopback registry (host:port, the same inside and outside the network namespace)
    registry: str | None = None
    #: the network namespace the cluster runs in (real node), None when on the host's loopback
    netns: str | None = None
    node_start_seconds: float | None = None

    # --- small REST client (stdlib only) ---------------------------------------------------------------------
    def request(self, method: str, path: str, body: dict | None = None, ok: tuple[int, ...] = (200, 201)) -> dict:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            if e.code in ok:
                return json.loads(e.read() or b"{}")
            raise RuntimeError(f"{method} {path}: {e.code} {e.read().decode(errors='replace')[:500]}") from e

    def add_nodes(self, count: int, prefix: str, make: Callable[[str], dict]) -> list[str]:
        names = [f"{prefix}-{i}" for i in range(count)]
        for name in names:
            self.request("POST", "/api/v1/nodes", make(name), ok=(200, 201, 409))
        return names

    def add_gpu_nodes(self, count: int, prefix: str = "gpu-node", gpus: int = 8) -> list[str]:
        return self.add_nodes(count, prefix, lambda name: fake_gpu_node(name, gpus))

    def add_cpu_nodes(self, count: int, prefix: str = "cpu-node") -> list[str]:
        return self.add_nodes(count, prefix, fake_cpu_node)

    def wait_nodes_ready(self, names: list[str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            nodes = self.request("GET", "/api/v1/nodes")["items"]
            ready = {
                n["metadata"]["name"]
                for n in nodes
                if any(
                    c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", [])
                )
            }
            if set(names) <= ready:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"nodes not Ready after {timeout}s: {sorted(set(names) - ready)}")
            time.sleep(0.3)

    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig), "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}

    def stop(self) -> None:
        stop_dir(self.dir)

    def argv(self, name: str) -> list[str]:
        """The command line a running component (``COMPONENTS``) was started with, from /proc."""
        pid = int((self.dir / "pids" / f"{name}.pid").read_text())
        return [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]]

    def restart(self, name: str = "kube-apiserver", timeout: float = 90) -> None:
        """Stop one component (SIGTERM to its process group, SIGKILL after 10 s) and start it again with the same
        command line; the API server is waited for until ready. Tests use it to break every client's watch and to
        start the API server with an empty watch cache."""
        argv, pid = self.argv(name), int((self.dir / "pids" / f"{name}.pid").read_text())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(ChildProcessError):  # reap it when it is ours
                os.waitpid(pid, os.WNOHANG)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            time.sleep(0.05)
        _spawn(name, argv, self.dir)
        if name == "kube-apiserver":
            log = self.dir / "logs" / f"{name}.log"
            _wait_http(f"{self.server}/readyz", self.ca, self.token, timeout, name, log)


def _spawn(name: str, argv: list[str], d: Path, env: dict[str, str] | None = None) -> int:
    log = open(d / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
    p = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})}
    )
    (d / "pids" / f"{name}.pid").write_text(str(p.pid))
    return p.pid


def _wait_http(url: str, ca: Path | None, token: str | None, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else None
    last = ""
    while time.monotonic() < deadline:
        req = urllib.request.Request(url)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception as e:
            last = str(e)
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise TimeoutError(f"{what} not healthy after {timeout}s ({last})\n--- {log.name} ---\n{tail}")


def node_module() -> ModuleType:
    """hack/node.py (the real node), loaded by path like this module is by the tests."""
    name = "labrador_hack_node"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HACK / "node.py")
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def start(
    d: Path,
    nodes: int = 2,
    bin_dir: Path | None = None,
    kwok_cidr: str = "127.1.0.0/16",
    cpu_nodes: int | None = None,
    real_node: bool = False,
    audit_groups: tuple[str, ...] = (),
) -> Cluster:
    """Start the control plane in directory ``d`` (state, logs, pids, kubeconfig); register ``nodes`` GPU nodes
    and ``cpu_nodes`` CPU-only nodes (default: one when there are GPU nodes).

    ``real_node``: the whole cluster runs in a network namespace of its own with a real node beside the kwok ones
    (hack/node.py: kubelet, containerd, kube-proxy, CoreDNS, a loopback registry); clients on the host reach the API
    server and the registry through loopback forwarders on the same ports.

    ``audit_groups``: the API server writes every request of these user groups (e.g. one namespace's service
    accounts) to ``d/logs/audit.log`` (JSON lines, Metadata level: who, verb, resource, the authorizer's decision) —
    what the RBAC audit test compares with the chart's rules.
    """
    d = d.resolve()
    stop_dir(d)
    bin_dir = bin_dir or build_binaries()
    node = node_module() if real_node else None
    node_bins = node.build_binaries() if node else None
    for sub in ("logs", "pids", "pki", "etcd"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    pki = d / "pki"
    make_pki(pki)
    token_file = d / ADMIN_TOKEN_FILE
    if not token_file.exists():
        token_file.write_text(os.urandom(24).hex())
    token = token_file.read_text().strip()
    identities = {"admin": (token, "admin", "system:masters")}
    if node:
        make_kubelet_client_cert(pki)
        identities["kubelet"] = (os.urandom(24).hex(), f"system:node:{node.NODE_NAME}", "system:nodes")
        identities["kube-proxy"] = (os.urandom(24).hex(), "system:kube-proxy", "")
        identities["coredns"] = (os.urandom(24).hex(), "labrador:coredns", "system:masters")
    (d / "tokens.csv").write_text(
        "".join(f'{t},{user},{user}-uid,"{group}"\n' for t, user, group in identities.values())
    )

    etcd_port, etcd_peer, api_port = free_port(), free_port(), free_port()
    server = f"https://127.0.0.1:{api_port}"
    kubeconfig = d / "kubeconfig"
    write_kubeconfig(kubeconfig, server, pki / "ca.crt", token)
    b = bin_dir
    ns = node.netns_name(d) if node else None
    registry_port = free_port() if node else None

    def wrap(argv: list[str]) -> list[str]:
        return node.in_netns(ns, argv) if node else argv

    if node:
        node.create_netns(ns)
        for name, port in (("api", api_port), ("registry", registry_port)):
            host, inner = node.forwarder_argvs(ns, d / f"fwd-{name}.sock", port)
            _spawn(f"fwd-{name}-ns", inner, d)
            _spawn(f"fwd-{name}-host", host, d)

    _spawn(
        "etcd",
        wrap(
            [
                str(b / "etcd"),
                "--data-dir",
                str(d / "etcd"),
                "--name",
                "labrador",
                "--listen-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{etcd_peer}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{etcd_peer}",
                "--initial-cluster",
                f"labrador=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync",
                "--quota-backend-bytes",
                str(4 * 1024**3),
                "--log-level",
                "warn",
            ]
        ),
        d,
    )
    if not node:  # in a network namespace etcd is not reachable from here; the API server's readiness covers it
        _wait_http(f"http://127.0.0.1:{etcd_port}/health", None, None, 30, "etcd", d / "logs" / "etcd.log")

    if node:
        network = [
            "--bind-address=0.0.0.0",
            f"--advertise-address={node.NODE_IP}",
            # the `kubernetes` Service's endpoints: the node's address, for in-cluster clients
            "--endpoint-reconciler-type=lease",
            "--authorization-mode=Node,RBAC",
            f"--kubelet-client-certificate={pki / 'kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP",
        ]
    else:
        network = [
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",
            "--authorization-mode=RBAC",
        ]
    _spawn(
        "kube-apiserver",
        wrap(
            [
                str(b / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                f"--secure-port={api_port}",
                *network,
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--token-auth-file={d / 'tokens.csv'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--allow-privileged=true",
                "--max-requests-inflight=1600",
                "--max-mutating-requests-inflight=800",
                *_audit_flags(d, audit_groups),
                "--v=0",
            ]
        ),
        d,
    )
    _wait_http(f"{server}/readyz", pki / "ca.crt", token, 90, "kube-apiserver", d / "logs" / "kube-apiserver.log")

    _spawn(
        "kube-controller-manager",
        wrap(
            [
                str(b / "kube-controller-manager"),
                f"--kubeconfig={kubeconfig}",
                "--leader-elect=false",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--use-service-account-credentials=false",
                "--controllers=*",
                "--kube-api-qps=500",
                "--kube-api-burst=1000",
                "--concurrent-job-syncs=20",
                "--concurrent-gc-syncs=40",
                "--node-monitor-grace-period=120s",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--v=0",
            ]
        ),
        d,
    )
    _spawn(
        "kube-scheduler",
        wrap(
            [
                str(b / "kube-scheduler"),
                f"--kubeconfig={kubeconfig}",
                "--leader-elect=false",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--v=0",
            ]
        ),
        d,
    )
    _spawn(
        "kwok",
        wrap(
            [
                str(b / "kwok"),
                f"--kubeconfig={kubeconfig}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--node-ip=127.0.0.1",
                f"--cidr={kwok_cidr}",
                f"--config={HACK / 'kwok-stages.yaml'}",
                f"--server-address=127.0.0.1:{free_port()}",
            ]
        ),
        d,
    )

    c = Cluster(dir=d, bin_dir=b, server=server, kubeconfig=kubeconfig, token=token, ca=pki / "ca.crt")
    # The namespace controller and service-account controller must be up before tests create pods.
    deadline = time.monotonic() + 60
    while True:
        sa = c.request("GET", "/api/v1/namespaces/default/serviceaccounts", ok=(200, 404))
        if sa.get("items"):
            break
        if time.monotonic() > deadline:
            raise TimeoutError("kube-controller-manager did not create the default ServiceAccount")
        time.sleep(0.3)
    if node:
        t0 = time.monotonic()
        kubeconfigs = {}
        for ident in ("kubelet", "kube-proxy", "coredns"):
            kubeconfigs[ident] = d / f"{ident}.kubeconfig"
            write_kubeconfig(kubeconfigs[ident], server, pki / "ca.crt", identities[ident][0], user=ident)
        node.start(d, ns, node_bins, b, pki / "ca.crt", registry_port, kubeconfigs,
                   lambda name, argv: _spawn(name, argv, d), c.request)  # fmt: skip
        c.registry = f"127.0.0.1:{registry_port}"
        c.netns = ns
        c.node_start_seconds = time.monotonic() - t0
    cpu_nodes = (1 if nodes else 0) if cpu_nodes is None else cpu_nodes
    if nodes or cpu_nodes:
        c.wait_nodes_ready(c.add_gpu_nodes(nodes) + c.add_cpu_nodes(cpu_nodes))
    (d / "cluster.json").write_text(
        json.dumps(
            {
                "server": server,
                "kubeconfig": str(kubeconfig),
                "bin_dir": str(b),
                "ca": str(c.ca),
                "registry": c.registry,
                "netns": c.netns,
            }
        )
    )
    return c


def load(d: Path) -> Cluster:
    d = d.resolve()
    info = json.loads((d / "cluster.json").read_text())
    return Cluster(
        dir=d,
        bin_dir=Path(info["bin_dir"]),
        server=info["server"],
        kubeconfig=Path(info["kubeconfig"]),
        token=(d / ADMIN_TOKEN_FILE).read_text().strip(),
        ca=Path(info["ca"]),
        registry=info.get("registry"),
        netns=info.get("netns"),
    )


def _audit_flags(d: Path, groups: tuple[str, ...]) -> list[str]:
    if not groups:
        return []
    policy = {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [{"level": "Metadata", "userGroups": list(groups)}, {"level": "None"}],
    }
    (d / "audit-policy.json").write_text(json.dumps(policy))
    return [
        f"--audit-policy-file={d / 'audit-policy.json'}",
        f"--audit-log-path={d / 'logs' / 'audit.log'}",
        "--audit-log-format=json",  # blocking mode (the default): each request is in the file when it returns
    ]


def stop_dir(d: Path) -> None:
    """Stop every process whose pid file is in ``d/pids`` (reverse start order), then forget the state."""
    pids = d / "pids"
    if not pids.exists():
        return
    for name in reversed(COMPONENTS + tuple(p.stem for p in pids.glob("*.pid") if p.stem not in COMPONENTS)):
        f = pids / f"{name}.pid"
        if not f.exists():
            continue
        pid = int(f.read_text())
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            f.unlink()
            continue
        for _ in range(200):
            with contextlib.suppress(ChildProcessError):  # reap it when it is ours; not ours: just watch it
                os.waitpid(pid, os.WNOHANG)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        f.unlink(missing_ok=True)
    node = node_module()
    ns = node.netns_name(d)
    if Path(f"/run/netns/{ns}").exists():
        node.stop(d, ns)
    for f in ("cluster.json",):
        (d / f).unlink(missing_ok=True)
    shutil.rmtree(d / "etcd", ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["up", "down", "env"])
    p.add_argument("--dir", type=Path, default=Path(os.environ.get("LABRADOR_CLUSTER_DIR", ROOT / ".cluster")))
    p.add_argument("--nodes", type=int, default=2, help="fake GPU nodes (8 GPUs each)")
    p.add_argument("--real-node", action="store_true",
                   help="the cluster in a network namespace of its own, with a real kubelet + containerd node, "
                   "kube-proxy, CoreDNS and a loopback registry (hack/node.py; needs root)")  # fmt: skip
    a = p.parse_args()
    if a.command == "up":
        t0 = time.monotonic()
        c = start(a.dir, nodes=a.nodes, real_node=a.real_node)
        print(f"control plane up in {time.monotonic() - t0:.1f}s: {c.server}", file=sys.stderr)
        if c.netns:
            print(f"real node {c.netns}: Ready {c.node_start_seconds:.1f}s after its start; registry {c.registry}",
                  file=sys.stderr)  # fmt: skip
        print(f"export KUBECONFIG={c.kubeconfig} PATH={c.bin_dir}:$PATH")
    elif a.command == "down":
        stop_dir(a.dir.resolve())
    else:
        c = load(a.dir)
        print(f"export KUBECONFIG={c.kubeconfig} PATH={c.bin_dir}:$PATH")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
