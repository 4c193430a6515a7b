"""Pod volumes as host directories, and each container's mounts onto them (bind-mounted by ``sandbox``).

configMap/secret/downwardAPI/projected → files written under the pod's directory (always mounted read-only, like
the kubelet); emptyDir → a directory under the pod's directory; persistentVolumeClaim → ``<volume-root>/<namespace>/
<claim>``, which outlives the pod. Secret contents are written, never logged.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from labrador_operator.localnode.env import (
    NotReady,
    PodContext,
    Resolver,
    Unsupported,
    field_value,
    object_bytes,
    resource_value,
)
from labrador_operator.localnode.expand import expand

Obj = dict[str, Any]
#: (namespace, serviceAccount, audience or None, expirationSeconds) -> a token bound to the pod
TokenSource = Callable[[str, str, str | None, int], str]


@dataclass(frozen=True)
class Volume:
    path: Path
    read_only: bool


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool
    is_file: bool = False

    def wire(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "readOnly": self.read_only, "file": self.is_file}


@dataclass(frozen=True)
class Owner:
    """Who owns materialised files: the pod's user (or root) and its fsGroup."""

    uid: int | None
    fs_group: int | None


def _safe_rel(path: str) -> PurePosixPath:
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise Unsupported(f"volume item path {path!r} must be relative and without '..'")
    return p


def _write(root: Path, rel: str, data: bytes, mode: int, owner: Owner) -> None:
    target = root / _safe_rel(rel)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    if owner.fs_group is not None:
        mode |= 0o440
    if os.geteuid() == 0:
        os.chown(target, owner.uid if owner.uid is not None else 0, owner.fs_group if owner.fs_group is not None else 0)
    target.chmod(mode)


def _keyed_files(kind: str, src: Obj, obj: Obj | None, default_mode: int) -> list[tuple[str, bytes, int]]:
    """The (path, bytes, mode) of a configMap/secret source, ``items`` and ``optional`` honoured."""
    if obj is None:
        if src.get("optional"):
            return []
        raise NotReady(f'{kind.lower()} "{src.get("name")}" not found')
    data = object_bytes(obj)
    mode = src.get("defaultMode", default_mode)
    if not src.get("items"):
        return [(k, v, mode) for k, v in data.items()]
    out = []
    for item in src["items"]:
        if item["key"] not in data:
            if src.get("optional"):
                continue
            raise NotReady(f"couldn't find key {item['key']} in {kind} {obj['metadata']['namespace']}/{src['name']}")
        out.append((item["path"], data[item["key"]], item.get("mode", mode)))
    return out


def _downward_files(ctx: PodContext, src: Obj, default_mode: int) -> list[tuple[str, bytes, int]]:
    out = []
    for item in src.get("items") or []:
        if "fieldRef" in item:
            value = field_value(ctx, item["fieldRef"]["fieldPath"])
        else:
            value = resource_value(ctx, item["resourceFieldRef"], None)
        out.append((item["path"], value.encode(), item.get("mode", src.get("defaultMode", default_mode))))
    return out


class PodVolumes:
    """Materialises a pod's volumes once, before its first container starts."""

    def __init__(
        self, ctx: PodContext, pod_dir: Path, volume_root: Path, resolve: Resolver, token: TokenSource, owner: Owner
    ) -> None:
        self.ctx, self.pod_dir, self.volume_root = ctx, pod_dir, volume_root
        self.resolve, self.token, self.owner = resolve, token, owner

    def prepare(self) -> dict[str, Volume]:
        pod = self.ctx.pod
        ns = pod["metadata"]["namespace"]
        out: dict[str, Volume] = {}
        for v in (pod.get("spec") or {}).get("volumes") or []:
            name = v["name"]
            if "persistentVolumeClaim" in v:
                out[name] = self._claim(ns, v["persistentVolumeClaim"])
            elif "emptyDir" in v:
                d = self.pod_dir / "volumes" / name
                d.mkdir(parents=True, exist_ok=True)
                d.chmod(0o777)  # like the kubelet's emptyDir
                out[name] = Volume(d, read_only=False)
            else:
                out[name] = Volume(self._files(ns, name, v), read_only=True)
        return out

    def _claim(self, ns: str, src: Obj) -> Volume:
        claim = src["claimName"]
        pvc = self.resolve("PersistentVolumeClaim", ns, claim)
        if pvc is None:
            raise NotReady(f'persistentvolumeclaim "{claim}" not found')
        d = self.volume_root / ns / claim
        if not d.exists():
            d.mkdir(parents=True)
            d.chmod(0o777)  # like a local-path provisioner's fresh volume
        if self.owner.fs_group is not None:
            _apply_fs_group(d, self.owner.fs_group)
        return Volume(d, read_only=bool(src.get("readOnly")))

    def _files(self, ns: str, name: str, v: Obj) -> Path:
        files: list[tuple[str, bytes, int]] = []
        if "configMap" in v:
            src = v["configMap"]
            files = _keyed_files("ConfigMap", src, self.resolve("ConfigMap", ns, src["name"]), 0o644)
        elif "secret" in v:
            src = {**v["secret"], "name": v["secret"]["secretName"]}
            files = _keyed_files("Secret", src, self.resolve("Secret", ns, src["name"]), 0o400)
        elif "downwardAPI" in v:
            files = _downward_files(self.ctx, v["downwardAPI"], 0o644)
        elif "projected" in v:
            files = self._projected(ns, v["projected"])
        d = self.pod_dir / "volumes" / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        d.chmod(0o755)
        for rel, data, mode in files:
            _write(d, rel, data, mode, self.owner)
        return d

    def _projected(self, ns: str, proj: Obj) -> list[tuple[str, bytes, int]]:
        mode = proj.get("defaultMode", 0o644)
        files: list[tuple[str, bytes, int]] = []
        for src in proj.get("sources") or []:
            if "configMap" in src:
                s = {"defaultMode": mode, **src["configMap"]}
                files += _keyed_files("ConfigMap", s, self.resolve("ConfigMap", ns, s["name"]), mode)
            elif "secret" in src:
                s = {"defaultMode": mode, **src["secret"]}
                files += _keyed_files("Secret", s, self.resolve("Secret", ns, s["name"]), mode)
            elif "downwardAPI" in src:
                files += _downward_files(self.ctx, {"defaultMode": mode, **src["downwardAPI"]}, mode)
            elif "serviceAccountToken" in src:
                t = src["serviceAccountToken"]
                sa = (self.ctx.pod.get("spec") or {}).get("serviceAccountName") or "default"
                token = self.token(ns, sa, t.get("audience"), int(t.get("expirationSeconds", 3600)))
                files.append((t["path"], token.encode(), 0o600 if self.owner.fs_group is None else mode))
        return files


def _apply_fs_group(d: Path, gid: int) -> None:
    """Group-own a writable volume by fsGroup (group rw, setgid dirs); skipped when its root already matches."""
    st = d.stat()
    if st.st_gid == gid and st.st_mode & 0o2070 == 0o2070:
        return
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            p = os.path.join(root, n)
            if os.path.islink(p):
                continue
            os.chown(p, -1, gid)
            m = os.stat(p).st_mode
            os.chmod(p, m | (0o2070 if n in dirs else 0o060))
    os.chown(d, -1, gid)
    os.chmod(d, st.st_mode | 0o2070)


def container_mounts(container: Obj, volumes: dict[str, Volume], env: dict[str, str]) -> list[Mount]:
    """The container's volumeMounts as bind mounts (subPath/subPathExpr honoured; sub-directories created)."""
    out = []
    for m in container.get("volumeMounts") or []:
        vol = volumes.get(m["name"])
        if vol is None:
            raise Unsupported(f"volumeMount {m['name']!r} names no volume")
        sub = m.get("subPath") or (expand(m["subPathExpr"], env) if m.get("subPathExpr") else "")
        source = vol.path
        if sub:
            source = vol.path / _safe_rel(sub)
            if not source.exists():
                source.mkdir(parents=True)
        read_only = vol.read_only or bool(m.get("readOnly"))
        out.append(Mount(str(source), m["mountPath"], read_only, is_file=source.is_file()))
    return out
