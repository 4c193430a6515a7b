"""Taxonomy children: a sync Job per (generation, refresh window) running `labrador-trainer taxonomy sync`.

git sources are cloned by the pod (credentials from a Secret volume, never argv); configMap and volume sources are
mounted read-only at /taxonomy-src and validated from there. The snapshot goes to
``taxonomies/<namespace>/<name>/<job>`` on the workspace; the result comes back in the termination message.
"""

from __future__ import annotations

from typing import Any

from labrador_operator.api.common import BaseResources, RunPolicy
from labrador_operator.api.taxonomy import TaxonomySpec
from labrador_operator.builders import common
from labrador_operator.builders.argv import argv_literal
from labrador_operator.constants import WORKSPACE_MOUNT
from labrador_operator.settings import Settings

KIND = "Taxonomy"
SOURCE_MOUNT = "/taxonomy-src"
CREDENTIALS_MOUNT = "/etc/labrador/git-credentials"
#: exit codes of `taxonomy sync`: 1 = the taxonomy is invalid (status Invalid, not retried)
EXIT_INVALID = 1
#: snapshots a sync keeps of its Taxonomy (the new one included), besides those running SyntheticDataJobs pinned
KEEP_SNAPSHOTS = 3
SYNC_RESOURCES = BaseResources(cpu="500m", memory="1Gi")


class Owner(common.Owner):
    KIND = KIND


def parse_duration(value: str | None) -> int:
    """'1h30m' → 5400 seconds; None/'' → 0."""
    if not value:
        return 0
    total, num = 0, ""
    for ch in value:
        if ch.isdigit():
            num += ch
        else:
            total += int(num) * {"h": 3600, "m": 60, "s": 1}[ch]
            num = ""
    return total


def sync_window(spec: TaxonomySpec, now_epoch: float) -> int:
    """The refresh window a sync belongs to: 0 without refreshInterval, else floor(now / interval)."""
    interval = parse_duration(spec.refresh_interval)
    return int(now_epoch // interval) if interval else 0


def sync_job_name(owner: Owner, generation: int, window: int) -> str:
    return common.child_name(owner.name, "sync", f"g{generation}", f"w{window}" if window else "")


def snapshot_dir(owner: Owner, job_name: str) -> str:
    return f"taxonomies/{owner.namespace}/{owner.name}/{job_name}"


def build_sync_job(
    owner: Owner,
    spec: TaxonomySpec,
    generation: int,
    window: int,
    settings: Settings,
    teacher_tokenizer: str | None = None,
    keep: tuple[str, ...] = (),
) -> common.Manifest:
    """``keep``: workspace paths of snapshots pinned by running SyntheticDataJobs (never pruned)."""
    name = sync_job_name(owner, generation, window)
    dest = f"{WORKSPACE_MOUNT}/{snapshot_dir(owner, name)}"
    argv = [
        "labrador-trainer",
        "taxonomy",
        "sync",
        "--dest",
        dest,
        "--format",
        "json",
        f"--termination-log={common.TERMINATION_LOG}",
    ]
    extra_volumes: list[tuple[dict[str, Any], dict[str, Any]]] = []
    src = spec.source
    if src.git:
        lit = argv_literal
        argv += ["--url", lit(src.git.url), "--ref", lit(src.git.ref)]
        if src.git.path:
            argv += ["--path", lit(src.git.path)]
        if src.git.secret_ref:
            extra_volumes.append(
                (
                    {
                        "name": "git-credentials",
                        "secret": {"secretName": src.git.secret_ref.name, "defaultMode": 0o400},
                    },
                    {"name": "git-credentials", "mountPath": CREDENTIALS_MOUNT, "readOnly": True},
                )
            )
            argv += ["--credentials-dir", CREDENTIALS_MOUNT]
        if spec.base:
            argv += ["--base", argv_literal(spec.base)]
    elif src.config_map:
        items = [{"key": i.key, "path": i.path} for i in src.config_map.items]
        extra_volumes.append(
            (
                {"name": "taxonomy-src", "configMap": {"name": src.config_map.name, "items": items}},
                {"name": "taxonomy-src", "mountPath": SOURCE_MOUNT, "readOnly": True},
            )
        )
        argv += ["--source-dir", SOURCE_MOUNT]
    elif src.volume:
        mount: dict[str, Any] = {"name": "taxonomy-src", "mountPath": SOURCE_MOUNT, "readOnly": True}
        if src.volume.sub_path:
            mount["subPath"] = src.volume.sub_path
        extra_volumes.append(
            (
                {
                    "name": "taxonomy-src",
                    "persistentVolumeClaim": {"claimName": src.volume.claim_name, "readOnly": True},
                },
                mount,
            )
        )
        argv += ["--source-dir", SOURCE_MOUNT]
    if spec.documents_secret_ref:
        extra_volumes.append(
            (
                {
                    "name": "docs-credentials",
                    "secret": {"secretName": spec.documents_secret_ref.name, "defaultMode": 0o400},
                },
                {"name": "docs-credentials", "mountPath": "/etc/labrador/docs-credentials", "readOnly": True},
            )
        )
        argv += ["--documents-credentials-dir", "/etc/labrador/docs-credentials"]
    if teacher_tokenizer:
        argv += ["--tokenizer", argv_literal(teacher_tokenizer)]
    mine = f"{WORKSPACE_MOUNT}/taxonomies/{owner.namespace}/{owner.name}/"
    argv += [f"--keep-last={KEEP_SNAPSHOTS}"]
    for path in sorted(set(keep)):
        full = f"{WORKSPACE_MOUNT}/{path}"
        if full.startswith(mine):  # only this Taxonomy's own snapshots are ever pruned
            argv += ["--keep-snapshot", argv_literal(full)]
    pod = common.pod_spec(
        settings=settings,
        command=argv,
        env=[],
        resources=SYNC_RESOURCES,
        gpus=0,
        workspace=spec.workspace,
        extra_volumes=extra_volumes,
    )
    meta = common.metadata(name, owner.namespace, owner.ref(), "sync")
    interval = parse_duration(spec.refresh_interval)
    policy = RunPolicy(
        backoff_limit=2,
        active_deadline_seconds=settings.sync_deadline_seconds,
        ttl_seconds_after_finished=max(2 * interval, 600) if interval else None,
    )
    return common.job(
        meta=meta,
        pod=pod,
        settings=settings,
        run_policy=policy,
        pod_metadata=spec.pod_metadata,
        user_error_exit_codes=(EXIT_INVALID, *settings.user_error_exit_codes),
    )
