"""Container environment built the way the kubelet builds it: envFrom, then env (literal values expanded
against earlier variables, fieldRef, resourceFieldRef, secretKeyRef, configMapKeyRef with ``optional``)."""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from labrador_operator.localnode.expand import expand

Obj = dict[str, Any]
#: (kind, namespace, name) -> object or None when it does not exist
Resolver = Callable[[str, str, str], Obj | None]
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class NotReady(Exception):
    """A referenced object or key is missing (the kubelet's CreateContainerConfigError): retried."""


class Unsupported(Exception):
    """A reference the runner cannot resolve faithfully: the pod is refused."""


@dataclass(frozen=True)
class PodContext:
    pod: Obj
    node_name: str
    pod_ip: str
    host_ip: str
    node_allocatable: dict[str, str]


def object_data(obj: Obj) -> dict[str, str]:
    """A ConfigMap's or Secret's keys as text (Secret values base64-decoded)."""
    if obj.get("kind") == "Secret":
        return {k: base64.b64decode(v).decode("utf-8", "surrogateescape") for k, v in (obj.get("data") or {}).items()}
    out = dict(obj.get("data") or {})
    for k, v in (obj.get("binaryData") or {}).items():
        out[k] = base64.b64decode(v).decode("utf-8", "surrogateescape")
    return out


def object_bytes(obj: Obj) -> dict[str, bytes]:
    if obj.get("kind") == "Secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    out = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return out


_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\[['\"]?(.+?)['\"]?\]$")


def field_value(ctx: PodContext, path: str) -> str:
    """A downward API fieldRef value."""
    meta, spec = ctx.pod["metadata"], ctx.pod.get("spec") or {}
    m = _SUBSCRIPT.match(path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": ctx.node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": ctx.pod_ip,
        "status.podIPs": ctx.pod_ip,
        "status.hostIP": ctx.host_ip,
        "status.hostIPs": ctx.host_ip,
    }
    if path in simple:
        return simple[path]
    if path in ("metadata.labels", "metadata.annotations"):
        items = sorted((meta.get(path.split(".")[1]) or {}).items())
        return "\n".join(f'{k}="{v}"' for k, v in items)
    raise Unsupported(f"fieldRef {path!r} is not supported")


def resource_value(ctx: PodContext, ref: Obj, default_container: str | None) -> str:
    """A resourceFieldRef value: the container's limit or request (the node's allocatable for a missing limit)."""
    name = ref.get("containerName") or default_container
    spec = ctx.pod.get("spec") or {}
    c = next((c for c in [*(spec.get("initContainers") or []), *spec["containers"]] if c["name"] == name), None)
    if c is None:
        raise Unsupported(f"resourceFieldRef names unknown container {name!r}")
    section, _, res = ref["resource"].partition(".")
    if section not in ("limits", "requests") or res not in ("cpu", "memory", "ephemeral-storage"):
        raise Unsupported(f"resourceFieldRef {ref['resource']!r} is not supported")
    resources = c.get("resources") or {}
    raw = (resources.get(section) or {}).get(res)
    if raw is None and section == "requests":
        raw = (resources.get("limits") or {}).get(res)
    if raw is None:
        raw = ctx.node_allocatable.get(res, "0") if section == "limits" else "0"
    divisor = Decimal(parse_quantity(ref.get("divisor") or "1")) or Decimal(1)
    return str(math.ceil(Decimal(parse_quantity(raw)) / divisor))


def _lookup(resolve: Resolver, kind: str, ns: str, ref: Obj, key: str) -> str | None:
    """One key of a ConfigMap/Secret; None when missing and ``optional``, NotReady when missing otherwise."""
    obj = resolve(kind, ns, ref["name"])
    optional = bool(ref.get("optional"))
    if obj is None:
        if optional:
            return None
        raise NotReady(f'{kind.lower()} "{ref["name"]}" not found')
    data = object_data(obj)
    if key not in data:
        if optional:
            return None
        raise NotReady(f"couldn't find key {key} in {kind} {ns}/{ref['name']}")
    return data[key]


def container_env(ctx: PodContext, container: Obj, base: dict[str, str], resolve: Resolver) -> dict[str, str]:
    """The container's environment: ``base`` (host and service variables), envFrom, then env in order."""
    ns = ctx.pod["metadata"]["namespace"]
    env = dict(base)
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if field not in src:
                continue
            ref = src[field]
            obj = resolve(kind, ns, ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                raise NotReady(f'{kind.lower()} "{ref["name"]}" not found')
            for k, v in object_data(obj).items():
                if _ENV_NAME.match(prefix + k):
                    env[prefix + k] = v
    for item in container.get("env") or []:
        name = item["name"]
        if "valueFrom" not in item:
            env[name] = expand(item.get("value", ""), env)
            continue
        src = item["valueFrom"]
        value: str | None
        if "fieldRef" in src:
            value = field_value(ctx, src["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in src:
            value = resource_value(ctx, src["resourceFieldRef"], container["name"])
        elif "secretKeyRef" in src:
            value = _lookup(resolve, "Secret", ns, src["secretKeyRef"], src["secretKeyRef"]["key"])
        elif "configMapKeyRef" in src:
            value = _lookup(resolve, "ConfigMap", ns, src["configMapKeyRef"], src["configMapKeyRef"]["key"])
        else:
            raise Unsupported(f"env {name!r} uses an unsupported source {sorted(src)}")
        if value is not None:
            env[name] = value
    return env


def container_argv(container: Obj, env: dict[str, str]) -> list[str]:
    """command + args with ``$(VAR)`` references expanded against the final environment."""
    return [expand(a, env) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
