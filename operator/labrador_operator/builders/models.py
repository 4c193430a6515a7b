"""Model sources → where the model is inside the pod, plus the volumes/init step that put it there."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from labrador_operator.api.common import ModelSource
from labrador_operator.builders.argv import argv_literal
from labrador_operator.constants import WORKSPACE_MOUNT

MODEL_CACHE = f"{WORKSPACE_MOUNT}/.labrador/models"


@dataclass
class ModelMount:
    """How a pod sees one model: a path, and what must exist for that path to be there."""

    path: str
    volumes: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    fetch: list[str] | None = None  # argv of the init step that fetches the model into the workspace cache
    env_from: list[dict[str, Any]] = field(default_factory=list)


def model_mount(source: ModelSource, volume_name: str) -> ModelMount:
    """pvc:// is mounted read-only; hf://, s3://, oci:// are fetched once into the workspace cache."""
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
    env_from = [{"secretRef": {"name": source.secret_ref.name}}] if source.secret_ref else []
    return ModelMount(path=dest, fetch=argv, env_from=env_from)
