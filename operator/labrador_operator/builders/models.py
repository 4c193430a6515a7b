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
    if not source.secret_ref:
        return ModelMount(path=dest, fetch=argv)
    if not uri.startswith("oci://"):
        return ModelMount(path=dest, fetch=argv, env_from=[{"secretRef": {"name": source.secret_ref.name}}])
    name = f"{volume_name}-registry-config"
    secret = {
        "secretName": source.secret_ref.name,
        "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
        "defaultMode": 0o400,
    }
    return ModelMount(
        path=dest,
        fetch=[*argv, "--registry-config", REGISTRY_CONFIG],
        fetch_volumes=[{"name": name, "secret": secret}],
        fetch_mounts=[{"name": name, "mountPath": REGISTRY_CONFIG_DIR, "readOnly": True}],
    )
