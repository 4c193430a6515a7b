"""Model sources → where the model is inside the pod, plus the volumes/init step that put it there."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from labrador_operator.api.common import ModelSource
from labrador_operator.builders.argv import argv_literal
from labrador_operator.constants import WORKSPACE_MOUNT

MODEL_CACHE = f"{WORKSPACE_MOUNT}/.labrador/models"
#: where the fetch step of an oci:// model sees its Secret's ``.dockerconfigjson`` (and only that key)
REGISTRY_CONFIG_DIR = "/var/run/secrets/labrador/registry"
REGISTRY_CONFIG = f"{REGISTRY_CONFIG_DIR}/config.json"


@dataclass
class ModelMount:
    """How a pod sees one model: a path, and what must exist for that path to be there."""

    path: str
    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    fetch: list[str] | None = None  # argv of the init step that fetches the model into the workspace cache
    env_from: list[dict[str, Any]] = field(default_factory=list)  # the fetch step's env (hf://, s3:// credentials)
    # volumes of the pod that only the fetch step mounts (an oci:// source's registry config), with their mounts
    fetch_volumes: list[dict[str, Any]] = field(default_factory=list)
    fetch_mounts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Credentials:
    """How a fetch or export step gets its ``secretRef``: env for hf:// and s3://; for oci:// only the Secret's
    ``.dockerconfigjson``, as a read-only file that ``--registry-config`` names (the path is in argv, the
    credentials never are)."""

    argv: list[str] = field(default_factory=list)
    env_from: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)


def credentials(uri: str, secret: str | None, volume_name: str) -> Credentials:
    if not secret:
        return Credentials()
    if not uri.startswith("oci://"):
        return Credentials(env_from=[{"secretRef": {"name": secret}}])
    name = f"{volume_name}-registry-config"
    items = {"secretName": secret, "items": [{"key": ".dockerconfigjson", "path": "config.json"}], "defaultMode": 0o400}
    return Credentials(
        argv=["--registry-config", REGISTRY_CONFIG],
        volumes=[{"name": name, "secret": items}],
        mounts=[{"name": name, "mountPath": REGISTRY_CONFIG_DIR, "readOnly": True}],
    )


def model_mount(source: ModelSource, volume_name: str) -> ModelMount:
    """pvc:// is mounted read-only; hf://, s3://, oci:// are fetched once into the workspace cache.

    The fetch step gets a ``secretRef`` as env for hf:// and s3://; for oci:// the Secret is a
    ``kubernetes.io/dockerconfigjson`` one, and only its ``.dockerconfigjson`` key is mounted, as a read-only file
    that ``--registry-config`` names (the path is in argv, the credentials never are).
    """
    uri = source.uri
    if uri.startswith("pvc://"):
        claim, _, sub = uri.removeprefix("pvc://").partition("/")
        mount_path = f"/models/{volume_name}"
        return ModelMount(
            path=f"{mount_path}/{sub}".rstrip("/"),
            volumes=[{"name": volume_name, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}],
            mounts=[{"name": volume_name, "mountPath": mount_path, "readOnly": True}],
        )
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    dest = f"{MODEL_CACHE}/{digest}"
    argv = ["labrador-trainer", "model", "fetch", "--uri", argv_literal(uri), "--dest", dest]
    if source.endpoint:
        argv += ["--endpoint", argv_literal(source.endpoint)]
    creds = credentials(uri, source.secret_ref.name if source.secret_ref else None, volume_name)
    return ModelMount(
        path=dest,
        fetch=[*argv, *creds.argv],
        env_from=creds.env_from,
        fetch_volumes=creds.volumes,
        fetch_mounts=creds.mounts,
    )
