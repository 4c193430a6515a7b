"""The Node object: registration (labels, capacity, taints, addresses) and heartbeats (Lease + Ready condition)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import platform
from dataclasses import dataclass, field
from typing import Any

from labrador_operator.localnode.kube import ApiError, Kube
from labrador_operator.localnode.status import now

log = logging.getLogger("labrador.local.node")
Obj = dict[str, Any]
LEASE_SECONDS = 40
LOCAL_LABEL = "labrador.dev/local"
VERSION = "v1.34.0-labrador-local"


def host_memory_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def parse_taint(text: str) -> Obj:
    """``key[=value]:Effect`` as a taint."""
    kv, _, effect = text.rpartition(":")
    if effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute") or not kv:
        raise ValueError(f"taint {text!r}: want key[=value]:NoSchedule|PreferNoSchedule|NoExecute")
    key, _, value = kv.partition("=")
    return {"key": key, "value": value, "effect": effect} if value else {"key": key, "effect": effect}


@dataclass
class NodeSpec:
    name: str
    host_ip: str = "127.0.0.1"
    gpus: int = 0
    max_pods: int = 110
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)

    def capacity(self) -> dict[str, str]:
        cap = {
            "cpu": str(os.cpu_count() or 1),
            "memory": f"{host_memory_bytes() // 1024}Ki",
            "pods": str(self.max_pods),
            "ephemeral-storage": "100Gi",
        }
        if self.gpus:
            cap["nvidia.com/gpu"] = str(self.gpus)
        return cap

    def all_labels(self) -> dict[str, str]:
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        return {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": arch,
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": arch,
            LOCAL_LABEL: "true",
            **self.labels,
        }


class NodeAgent:
    """Creates or updates the Node, renews its Lease and reports the Ready condition."""

    def __init__(self, kube: Kube, spec: NodeSpec) -> None:
        self.kube, self.spec = kube, spec
        self.uid: str | None = None

    def _conditions(self, ready: bool, message: str) -> list[Obj]:
        t = now()
        out = [
            {"type": kind, "status": "False", "reason": f"KubeletHasSufficient{kind.removesuffix('Pressure')}",
             "message": "labrador-local does not measure pressure", "lastHeartbeatTime": t, "lastTransitionTime": t}
            for kind in ("MemoryPressure", "DiskPressure", "PIDPressure")
        ]  # fmt: skip
        out.append(
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "reason": "KubeletReady" if ready else "KubeletNotReady",
                "message": message,
                "lastHeartbeatTime": t,
                "lastTransitionTime": t,
            }
        )
        return out

    def _status(self, ready: bool, message: str) -> Obj:
        cap = self.spec.capacity()
        return {
            "capacity": cap,
            "allocatable": cap,
            "conditions": self._conditions(ready, message),
            "addresses": [
                {"type": "InternalIP", "address": self.spec.host_ip},
                {"type": "Hostname", "address": self.spec.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": _read("/etc/machine-id"),
                "systemUUID": "",
                "bootID": _read("/proc/sys/kernel/random/boot_id"),
                "kernelVersion": platform.release(),
                "osImage": "labrador-local (host processes)",
                "containerRuntimeVersion": "labrador-local://0.1",
                "kubeletVersion": VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": self.spec.all_labels()["kubernetes.io/arch"],
            },
        }

    def register(self) -> Obj:
        """Create the Node, or take over an existing one (labels, taints and capacity updated); mark it Ready."""
        path = f"/api/v1/nodes/{self.spec.name}"
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.spec.name, "labels": self.spec.all_labels()},
            "spec": {"taints": self.spec.taints} if self.spec.taints else {},
            "status": self._status(True, "labrador-local is posting ready status"),
        }
        try:
            node = self.kube.request("POST", "/api/v1/nodes", body)
        except ApiError as e:
            if e.status != 409:
                raise
            existing = self.kube.get(path) or {}
            if "kwok.x-k8s.io/node" in (existing.get("metadata", {}).get("annotations") or {}):
                raise RuntimeError(f"node {self.spec.name} is managed by kwok; pick another --node-name") from None
            node = self.kube.patch(
                path,
                {"metadata": {"labels": self.spec.all_labels()}, "spec": {"taints": self.spec.taints or None}},
            )
        self.uid = node["metadata"]["uid"]
        self.heartbeat(True)
        return node

    def heartbeat(self, ready: bool = True, message: str = "labrador-local is posting ready status") -> None:
        """Renew the Lease and post the node's status (conditions with a fresh heartbeat time)."""
        self.kube.patch(f"/api/v1/nodes/{self.spec.name}/status", {"status": self._status(ready, message)})
        self.renew_lease()

    def renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.spec.name}"
        renew = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {"holderIdentity": self.spec.name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": renew}
        try:
            self.kube.patch(path, {"spec": spec})
        except ApiError as e:
            if e.status != 404:
                raise
            owner = [{"apiVersion": "v1", "kind": "Node", "name": self.spec.name, "uid": self.uid}] if self.uid else []
            self.kube.request(
                "POST",
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                {"metadata": {"name": self.spec.name, "ownerReferences": owner}, "spec": spec},
            )


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""
