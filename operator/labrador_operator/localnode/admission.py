"""What the local runner refuses: anything it cannot run the way a kubelet would (pure function of the pod)."""

from __future__ import annotations

from typing import Any

SUPPORTED_VOLUMES = ("configMap", "secret", "emptyDir", "persistentVolumeClaim", "projected", "downwardAPI")
SUPPORTED_PROJECTIONS = ("configMap", "secret", "downwardAPI", "serviceAccountToken")


def _container_problems(c: dict[str, Any], kind: str) -> list[str]:
    where = f"{kind} {c.get('name')!r}"
    out: list[str] = []
    sc = c.get("securityContext") or {}
    if sc.get("privileged"):
        out.append(f"{where} is privileged")
    if (sc.get("capabilities") or {}).get("add"):
        out.append(f"{where} adds capabilities {sc['capabilities']['add']}")
    if sc.get("windowsOptions"):
        out.append(f"{where} has Windows options")
    if not (c.get("command") or c.get("args")):
        out.append(f"{where} has no command: the image's entrypoint is unknown to a local runner")
    elif not c.get("command"):
        out.append(f"{where} sets args without command: the image's entrypoint is unknown to a local runner")
    if c.get("volumeDevices"):
        out.append(f"{where} uses raw block devices")
    if any(p.get("hostPort") for p in c.get("ports") or []):
        out.append(f"{where} uses hostPort")
    if c.get("lifecycle"):
        out.append(f"{where} has lifecycle hooks")
    if c.get("stdin") or c.get("tty"):
        out.append(f"{where} asks for stdin/tty")
    if kind == "init container" and c.get("restartPolicy") == "Always":
        out.append(f"{where} is a sidecar (restartPolicy: Always)")
    return out


def refusals(pod: dict[str, Any], honour_users: bool = True) -> list[str]:
    """Reasons the pod cannot be run faithfully here; empty when it can."""
    spec = pod.get("spec") or {}
    out: list[str] = []
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            out.append(f"pod uses {flag}")
    if spec.get("hostUsers") is False:
        out.append("pod asks for a user namespace (hostUsers: false)")
    if (spec.get("os") or {}).get("name", "linux") != "linux":
        out.append(f"pod is for {spec['os']['name']}")
    containers = spec.get("containers") or []
    if len(containers) != 1:
        out.append(f"pod has {len(containers)} containers; the local runner runs exactly one")
    if spec.get("ephemeralContainers"):
        out.append("pod has ephemeral containers")
    if spec.get("resourceClaims"):
        out.append("pod uses dynamic resource claims")
    psc = spec.get("securityContext") or {}
    if psc.get("windowsOptions"):
        out.append("pod has Windows options")
    for c in spec.get("initContainers") or []:
        out += _container_problems(c, "init container")
    for c in containers:
        out += _container_problems(c, "container")
    for c in [*(spec.get("initContainers") or []), *containers]:
        sc = {**psc, **(c.get("securityContext") or {})}
        if honour_users and sc.get("runAsNonRoot") and sc.get("runAsUser") in (None, 0):
            name = c.get("name")
            out.append(f"container {name!r} sets runAsNonRoot without a non-root runAsUser (there is no image user)")
    for v in spec.get("volumes") or []:
        kind = next((k for k in v if k != "name"), "?")
        if kind == "hostPath":
            out.append(f"volume {v['name']!r} is a hostPath")
        elif kind not in SUPPORTED_VOLUMES:
            out.append(f"volume {v['name']!r} has unsupported type {kind}")
        elif kind == "projected":
            for src in v["projected"].get("sources") or []:
                skind = next(iter(src), "?")
                if skind not in SUPPORTED_PROJECTIONS:
                    out.append(f"volume {v['name']!r} projects unsupported source {skind}")
    return out
