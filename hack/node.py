"""A real Kubernetes node for the local cluster (hack/cluster.py ``up --real-node``).

The kubelet and kube-proxy of the control plane's Kubernetes version, containerd v2 with runc, the CNI plugins
(bridge, host-local, loopback, portmap), CoreDNS and an OCI registry (distribution/v3), all built from the Go
module proxy by hack/build-node.sh. Measured facts behind each setting are in DESIGN.md §5 "A real node".

Network: the whole cluster lives in one network namespace that this module creates (``labrador-<hash of the
cluster directory>``): the control plane, the node, the pod bridge (10.244.0.0/24), Service IPs (10.96.0.0/16,
kube-proxy in iptables mode) and the node's own address (10.243.0.2 on a veth pair inside the namespace). Nothing
is routed in the host's network namespace: clients on the host reach the API server and the registry only through
two loopback forwarders (socat, host 127.0.0.1:PORT -> a Unix socket -> the same port on the namespace's
loopback), so the same ``127.0.0.1:PORT`` names work inside and outside.

Mounts: containerd and the kubelet share a private mount namespace (``unshare -m``) in which the three kernel
sysctls the kubelet insists on are shown with the values it expects (``protectKernelDefaults``; the shared host's
are never changed) and the paths the kubelet and containerd always use (/var/lib/kubelet, /run/containerd,
/var/log/containers) are private tmpfs mounts, so two clusters never share them and nothing is left on the host.
Pods' cgroups live under ``/labrador-<netns>`` in every cgroup v1 hierarchy and are removed on ``down``.

Only the Python standard library is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

HACK = Path(__file__).resolve().parent
NODE_NAME = "labrador-node"
NODE_IP = "10.243.0.2"
POD_SUBNET = "10.244.0.0/24"
POD_GATEWAY = "10.244.0.1"
SERVICE_CIDR = "10.96.0.0/16"
API_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
#: what the kubelet checks with protectKernelDefaults; shown to it inside its mount namespace only
KERNEL_DEFAULTS = {"vm/overcommit_memory": "1", "kernel/panic": "10", "kernel/panic_on_oops": "1"}
#: private tmpfs mounts in the node's mount namespace (paths the kubelet and containerd use whatever their config)
PRIVATE_DIRS = ("/var/lib/kubelet", "/run/containerd", "/var/log/containers")
#: node components, in start order (hack/cluster.py stops pid files in reverse order)
COMPONENTS = ("registry", "containerd", "kubelet", "kube-proxy", "coredns")


def build_binaries(env: dict[str, str] | None = None) -> Path:
    out = subprocess.run(
        ["bash", str(HACK / "build-node.sh")], check=True, stdout=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    return Path(out.stdout.strip().splitlines()[-1])


def netns_name(d: Path) -> str:
    return "labrador-" + hashlib.sha256(str(d.resolve()).encode()).hexdigest()[:8]


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True)


def in_netns(ns: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def create_netns(ns: str) -> None:
    """The cluster's network namespace: loopback up and the node's address on a veth pair whose both ends stay in
    the namespace (this kernel has no dummy interfaces). No default route: nothing leaves."""
    delete_netns(ns)
    _run("ip", "netns", "add", ns)
    _run("ip", "-n", ns, "link", "set", "lo", "up")
    _run("ip", "-n", ns, "link", "add", "node0", "type", "veth", "peer", "name", "node0-end")
    _run("ip", "-n", ns, "addr", "add", f"{NODE_IP}/32", "dev", "node0")
    _run("ip", "-n", ns, "link", "set", "node0", "up")
    _run("ip", "-n", ns, "link", "set", "node0-end", "up")
    # a route for Service IPs, which kube-proxy DNATs to endpoints before the packet is routed again
    _run("ip", "-n", ns, "route", "add", SERVICE_CIDR, "dev", "node0")


def delete_netns(ns: str) -> None:
    if Path(f"/run/netns/{ns}").exists():
        _run("ip", "netns", "del", ns, check=False)


def forwarder_argvs(ns: str, sock: Path, port: int) -> tuple[list[str], list[str]]:
    """(host side, namespace side) socat commands joining host 127.0.0.1:port to the namespace's 127.0.0.1:port."""
    host = ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork", f"UNIX-CONNECT:{sock}"]
    inner = in_netns(ns, ["socat", f"UNIX-LISTEN:{sock},fork,unlink-early", f"TCP:127.0.0.1:{port}"])
    return host, inner


# --- configuration files --------------------------------------------------------------------------------------


def containerd_config(d: Path, bins: Path, registry: str) -> str:
    """containerd v2 (config version 3) with the CRI plugin, runc, the CNI bridge and the loopback registry."""
    c = d / "containerd"
    return f"""version = 3
root = "{c / "root"}"
state = "{c / "state"}"

[grpc]
  address = "{c / "containerd.sock"}"

[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  # pods' network namespaces under the state directory, not the host's /run/netns (they die with the node)
  netns_mounts_under_state_dir = true
  # the sandbox lacks CAP_SYS_RESOURCE: without this, pods stay Pending (DESIGN.md §5)
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{bins / "runc"}"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{bins / "cni"}"]
    conf_dir = "{d / "cni" / "net.d"}"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{registry}/pause:{pause_tag()}"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "{c / "certs.d"}"
"""


def registry_hosts(registry: str) -> str:
    """containerd's hosts.toml for the loopback registry: plain HTTP, pull and resolve."""
    return f'server = "http://{registry}"\n\n[host."http://{registry}"]\n  capabilities = ["pull", "resolve"]\n'


def cni_config(d: Path) -> dict:
    return {
        "cniVersion": "1.0.0",
        "name": "labrador",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": POD_GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(d / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(d: Path, ns: str, ca: Path) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{d / 'containerd' / 'containerd.sock'}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{ns}",
        "failSwapOn": False,
        "failCgroupV1": False,
        "protectKernelDefaults": True,
        "resolvConf": "",
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "podLogsDir": str(d / "pod-logs"),
        "serializeImagePulls": False,
        "maxPods": 110,
        "address": NODE_IP,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "readOnlyPort": 0,
        # a shared disk: no image GC, and disk-pressure eviction only when it is all but full (an absolute floor:
        # a percentage of a large shared disk is gigabytes other tenants hold; start() checks the room up front)
        "imageGCHighThresholdPercent": 100,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "512Mi", "imagefs.available": "512Mi"},
        "shutdownGracePeriod": "0s",
        "localStorageCapacityIsolation": True,
        "registerNode": True,
    }


def kube_proxy_config(d: Path, kubeconfig: Path) -> dict:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "bindAddress": NODE_IP,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "mode": "iptables",
        "clusterCIDR": POD_SUBNET,
        # pods reach Services served on the same bridge (CoreDNS is not a pod, but the webhook and metrics are)
        "iptables": {"masqueradeAll": True},
        # the namespace's conntrack table is the host's: leave its limits alone
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }


def corefile(kubeconfig: Path) -> str:
    return f""".:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:8091
    ready 127.0.0.1:8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
    loop
}}
"""


def registry_store() -> Path:
    """The registry's blobs outlive a cluster (content-addressed, so a cache by content hash): pushing an image
    whose layers a former cluster already got sends only the new layers."""
    return labrador_cache() / "registry"


#: the registry's store is a cache: past this size (old dependency layers pile up) it starts empty again; one set of
#: the images is ~3 GiB compressed, so this keeps one change of the locked dependencies' layer and no more
REGISTRY_STORE_MAX_BYTES = 6 * 1024**3
#: the free disk a real node needs: containerd holds the images compressed and unpacked (~10 GiB for the CPU
#: trainer), the registry a copy, the demo its models and states; below this start() refuses with the numbers
NODE_DISK_NEEDED_BYTES = 16 * 1024**3


def check_disk(d: Path, needed: int = NODE_DISK_NEEDED_BYTES) -> None:
    """Fail before anything starts when the disk under ``d`` (and the cache) cannot hold a node's images."""
    for where in {d, labrador_cache()}:
        probe = where if where.exists() else where.parent
        free = shutil.disk_usage(probe).free
        if free < needed:
            raise RuntimeError(
                f"the real node needs {needed / 1024**3:.0f} GiB free under {where} and {free / 1024**3:.1f} GiB "
                "are: containerd unpacks the images there (free space: old pytest runs in /tmp/pytest-of-*, "
                "the cluster dirs `hack/cluster.py down` leaves, ~/.cache/labrador)"
            )


def trim_registry_store() -> None:
    store = registry_store()
    if store.exists():
        size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file() and not f.is_symlink())
        if size > REGISTRY_STORE_MAX_BYTES:
            shutil.rmtree(store, ignore_errors=True)


def registry_config(port: int) -> str:
    return (
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {registry_store()}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )


def dns_objects() -> list[tuple[str, dict]]:
    """The kube-dns Service (the kubelet's clusterDNS) and its EndpointSlice: CoreDNS on the node's address."""
    labels = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
    ports = [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
    svc = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", "namespace": "kube-system",
                                                            "labels": labels},
        "spec": {"clusterIP": DNS_SERVICE_IP, "ports": [{**p, "targetPort": 53} for p in ports]},
    }  # fmt: skip
    eps = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kube-dns-node", "namespace": "kube-system",
                     "labels": {"kubernetes.io/service-name": "kube-dns",
                                "endpointslice.kubernetes.io/managed-by": "labrador.dev-hack"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}, "nodeName": NODE_NAME}],
        "ports": ports,
    }  # fmt: skip
    return [
        ("/api/v1/namespaces/kube-system/services", svc),
        ("/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices", eps),
    ]


def pause_tag() -> str:
    return "3.10-labrador"


def labrador_cache() -> Path:
    return Path(os.environ.get("LABRADOR_CACHE", Path.home() / ".cache" / "labrador"))


def image_storage() -> str:
    """hack/images.sh's containers-storage, as a skopeo transport prefix."""
    cache = labrador_cache()
    runroot = Path(os.environ.get("XDG_RUNTIME_DIR", "/run")) / "labrador-containers"
    return f"containers-storage:[overlay@{cache / 'containers' / 'storage'}+{runroot}]"


def push(local_ref: str, dest: str, log: Path | None = None) -> None:
    """Copy an image from hack/images.sh's storage to a registry (plain HTTP: the loopback one)."""
    argv = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"{image_storage()}{local_ref}", f"docker://{dest}"]
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"skopeo copy {local_ref} -> {dest} failed: {p.stderr.strip()[-2000:]}")


def build_images(*args: str) -> dict[str, str]:
    """hack/images.sh ARGS -> {name: local reference}."""
    out = subprocess.run(["bash", str(HACK / "images.sh"), *args], check=True, stdout=subprocess.PIPE, text=True)
    return dict(line.split(" ", 1) for line in out.stdout.strip().splitlines() if " " in line)


# --- cgroups and leftovers ------------------------------------------------------------------------------------


def cgroup_dirs(ns: str) -> list[Path]:
    root = Path("/sys/fs/cgroup")
    out = []
    for h in sorted(root.iterdir()) if root.exists() else []:
        if h.is_dir() and not h.is_symlink() and (h / "cgroup.procs").exists():
            out.append(h / ns)
    return out


def make_cgroups(ns: str) -> None:
    for c in cgroup_dirs(ns):
        c.mkdir(exist_ok=True)
        # cpuset children start empty: copy the parent's cpus and mems so tasks can join
        for f in ("cpuset.cpus", "cpuset.mems"):
            with contextlib.suppress(OSError):
                if (c / f).exists() and not (c / f).read_text().strip():
                    (c / f).write_text((c.parent / f).read_text())


def _cgroup_tree_pids(c: Path) -> set[int]:
    pids: set[int] = set()
    if not c.exists():
        return pids
    for procs in c.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            pids.update(int(p) for p in procs.read_text().split())
    return pids


def remove_cgroups(ns: str) -> None:
    """Kill what is left in the node's cgroups (containers of a node stopped hard), then remove them."""
    dirs = cgroup_dirs(ns)
    for _ in range(50):
        pids = set().union(*(_cgroup_tree_pids(c) for c in dirs)) if dirs else set()
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for c in dirs:
        if c.exists():
            for sub in sorted((p for p in c.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            with contextlib.suppress(OSError):
                c.rmdir()


def kill_shims(d: Path) -> None:
    """containerd's shims detach into their own sessions: stop the ones serving this node."""
    marker = str(d / "containerd")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "containerd-shim" in cmd and marker in cmd:
                os.kill(int(proc.name), signal.SIGKILL)


# --- start ----------------------------------------------------------------------------------------------------


def node_namespace_script(d: Path) -> str:
    """Shell run by `unshare -m` before containerd: private mounts, shadowed kernel defaults (argv of fixed paths)."""
    lines = ["set -e", "mount --make-rprivate /"]
    for path in PRIVATE_DIRS:
        lines += [f"mkdir -p {path}", f"mount -t tmpfs -o mode=0755 tmpfs {path}"]
    for key, value in KERNEL_DEFAULTS.items():
        f = d / "sysctl" / key.replace("/", "_")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(value + "\n")
        lines.append(f"mount --bind -o ro {f} /proc/sys/{key}")
    lines.append('exec "$@"')
    return "\n".join(lines) + "\n"


def wait_for(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{what} not ready after {timeout}s\n--- {log.name if log else ''} ---\n{tail}")


def write_configs(d: Path, ns: str, bins: Path, ca: Path, registry: str, kubeconfigs: dict[str, Path]) -> None:
    (d / "containerd" / "certs.d" / registry).mkdir(parents=True, exist_ok=True)
    (d / "containerd" / "config.toml").write_text(containerd_config(d, bins, registry))
    (d / "containerd" / "certs.d" / registry / "hosts.toml").write_text(registry_hosts(registry))
    (d / "cni" / "net.d").mkdir(parents=True, exist_ok=True)
    (d / "cni" / "net.d" / "10-labrador.conflist").write_text(json.dumps(cni_config(d), indent=2))
    (d / "pod-logs").mkdir(exist_ok=True)
    (d / "kubelet").mkdir(exist_ok=True)
    (d / "kubelet-config.json").write_text(json.dumps(kubelet_config(d, ns, ca), indent=2))
    (d / "kube-proxy-config.json").write_text(json.dumps(kube_proxy_config(d, kubeconfigs["kube-proxy"]), indent=2))
    (d / "Corefile").write_text(corefile(kubeconfigs["coredns"]))
    (d / "node-ns.sh").write_text(node_namespace_script(d))


def start(
    d: Path,
    ns: str,
    bins: Path,
    kube_bins: Path,
    ca: Path,
    registry_port: int,
    kubeconfigs: dict[str, Path],
    spawn: Callable[[str, list[str]], int],
    request: Callable[..., dict],
) -> None:
    """Start the registry, containerd, the kubelet, kube-proxy and CoreDNS in ``ns``; wait until the node is Ready.

    ``bins``: hack/build-node.sh's directory; ``kube_bins``: the control plane's (kubelet, kube-proxy).
    ``kubeconfigs``: kubelet, kube-proxy, coredns (each with its own identity); ``spawn(name, argv)`` starts a
    process and records its pid; ``request`` is the admin REST client.
    """
    registry = f"127.0.0.1:{registry_port}"
    trim_registry_store()
    check_disk(d)
    write_configs(d, ns, bins, ca, registry, kubeconfigs)
    path = f"{bins}:{bins / 'cni'}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    logs = d / "logs"

    registry_store().mkdir(parents=True, exist_ok=True)
    (d / "registry.yml").write_text(registry_config(registry_port))
    # no tracing exporter (it would try localhost:4318 every 15 s)
    spawn("registry", in_netns(ns, ["env", "OTEL_TRACES_EXPORTER=none", str(bins / "registry"), "serve",
                                    str(d / "registry.yml")]))  # fmt: skip
    wait_for(lambda: urllib.request.urlopen(f"http://{registry}/v2/", timeout=2).status == 200, 30, "registry",
             logs / "registry.log")  # fmt: skip
    push(build_images("pause", str(bins / "pause"))["pause"], f"{registry}/pause:{pause_tag()}")

    make_cgroups(ns)
    # containerd in a private mount namespace (the kubelet joins it below). nsenter, not `ip netns exec`: that
    # remounts /sys for the namespace, which hides the cgroup mounts the kubelet needs.
    spawn("containerd", ["nsenter", f"--net=/run/netns/{ns}", "unshare", "--mount", "--", "sh", str(d / "node-ns.sh"),
                         str(bins / "containerd"), "--config", str(d / "containerd" / "config.toml")])  # fmt: skip
    sock = d / "containerd" / "containerd.sock"
    wait_for(sock.exists, 30, "containerd", logs / "containerd.log")
    cpid = int((d / "pids" / "containerd.pid").read_text())
    spawn("kubelet", ["nsenter", f"--target={cpid}", "--mount", "--net", "--", "env", f"PATH={path}",
                      str(kube_bins / "kubelet"), f"--config={d / 'kubelet-config.json'}",
                      f"--kubeconfig={kubeconfigs['kubelet']}", f"--hostname-override={NODE_NAME}",
                      f"--node-ip={NODE_IP}", f"--root-dir={d / 'kubelet'}", f"--cert-dir={d / 'kubelet' / 'pki'}",
                      "--node-labels=labrador.dev/real-node=true", "--v=1"])  # fmt: skip
    spawn("kube-proxy", in_netns(ns, [str(kube_bins / "kube-proxy"), f"--config={d / 'kube-proxy-config.json'}",
                                      "--v=1"]))  # fmt: skip
    for path_, body in dns_objects():
        request("POST", path_, body, ok=(200, 201, 409))
    spawn("coredns", in_netns(ns, [str(bins / "coredns"), "-conf", str(d / "Corefile")]))

    def ready() -> bool:
        node = request("GET", f"/api/v1/nodes/{NODE_NAME}", ok=(200, 404))
        conds = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    wait_for(ready, 90, f"node {NODE_NAME}", logs / "kubelet.log")


def stop(d: Path, ns: str) -> None:
    """After the node's processes are stopped: its shims, containers, cgroups, network namespace, and the images
    and volumes it held (containerd's content and snapshots: gigabytes per cluster; the registry's blobs stay)."""
    kill_shims(d)
    remove_cgroups(ns)
    delete_netns(ns)
    for sub in ("containerd", "kubelet", "pod-logs", "cni"):
        shutil.rmtree(d / sub, ignore_errors=True)
