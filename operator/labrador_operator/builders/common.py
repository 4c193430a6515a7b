"""Pieces every child manifest is built from: names, labels, owner references, pod templates, Jobs.

Pure functions: typed spec in, manifest dict out. No I/O, no kopf.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from labrador_operator.api.common import (
    GPU_TOLERATION,
    BaseResources,
    PodMetadata,
    RunPolicy,
    Toleration,
    Workspace,
)
from labrador_operator.builders.models import ModelMount
from labrador_operator.constants import (
    ANNOTATION_OWNER,
    API_GROUP,
    API_VERSION,
    GPU_RESOURCE,
    KUEUE_QUEUE_LABEL,
    LABEL_KIND,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_PHASE,
    MANAGED_BY,
    WORKSPACE_MOUNT,
)
from labrador_operator.settings import Settings

Manifest = dict[str, Any]

#: Longest child name: an Indexed Job's pods get the hostname "<job>-<index>", which must fit a DNS label (63).
MAX_CHILD_NAME = 52
CONFIG_MOUNT = "/etc/labrador"
TERMINATION_LOG = "/dev/termination-log"


@dataclass(frozen=True)
class Owner:
    """The parent object as builders need it; each builder module subclasses it with its kind."""

    KIND: ClassVar[str] = ""
    namespace: str
    name: str
    uid: str

    def ref(self) -> dict[str, str]:
        return {"kind": self.KIND, "name": self.name, "uid": self.uid}


def _short_hash(text: str, n: int = 6) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def child_name(parent: str, *parts: str, limit: int = MAX_CHILD_NAME) -> str:
    """Deterministic child name ``<parent>-<parts>``; long parents are cut and suffixed with a hash.

    The same (parent, parts) always gives the same name, so a restarted operator finds its children instead of
    creating twins; different parents never collide because the hash covers the full name.
    """
    suffix = "-".join(p for p in parts if p)
    full = f"{parent}-{suffix}" if suffix else parent
    if len(full) <= limit:
        return full
    keep = limit - len(suffix) - 8  # "-" + 6 hash chars + "-"
    if keep < 1:
        raise ValueError(f"child suffix {suffix!r} leaves no room for the parent name")
    return f"{parent[:keep].rstrip('-')}-{_short_hash(full)}-{suffix}"


def label_value(value: str) -> str:
    """A label value (≤ 63 chars) that stays unique for long names."""
    if len(value) <= 63:
        return value
    return f"{value[:56].rstrip('-._')}-{_short_hash(value)}"


def labels(kind: str, name: str, role: str | None = None) -> dict[str, str]:
    out = {LABEL_KIND: kind.lower(), LABEL_NAME: label_value(name), LABEL_MANAGED_BY: MANAGED_BY}
    if role:
        out[LABEL_PHASE] = role
    return out


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(
    name: str,
    namespace: str,
    owner: Mapping[str, Any],
    role: str | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Child metadata from the owner's ``{kind, name, uid}``."""
    meta_labels = labels(owner["kind"], owner["name"], role)
    meta_labels.update(extra_labels or {})
    return {
        "name": name,
        "namespace": namespace,
        "labels": meta_labels,
        # labels may be shortened; the annotation keeps the parent's full name for pods (owned by their Job)
        "annotations": {ANNOTATION_OWNER: owner["name"]},
        "ownerReferences": [owner_reference(owner["kind"], owner["name"], owner["uid"])],
    }


def merge_by_name(base: Iterable[Mapping[str, Any]], overrides: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Merge lists of named items (env, volumes, mounts): later items replace earlier ones with the same name."""
    out: dict[str, dict[str, Any]] = {}
    for item in [*base, *overrides]:
        out[item["name"]] = copy.deepcopy(dict(item))
    return list(out.values())


def env_value(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def env_secret(name: str, secret: str, key: str, optional: bool = False) -> dict[str, Any]:
    """An env var from a Secret key: the operator never reads the Secret, the kubelet does."""
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def restricted_security_context() -> dict[str, Any]:
    """Pod Security "restricted": no privilege escalation, no capabilities, non-root, read-only root filesystem
    (every path a workload writes is a volume: the workspace, /tmp, the caches, /dev/shm)."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


#: where the trainer image keeps HOME, HF_HOME, XDG/Triton/inductor/vLLM caches (trainer_image/Containerfile)
CACHE_MOUNT = "/var/cache/labrador"


def scratch_volumes(gpus: int, settings: Settings) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The writable paths of a read-only-root workload: /tmp, the image's cache directory, and /dev/shm as a
    memory-backed emptyDir (NCCL and vLLM move tensors between processes through it; a container's default 64 MiB
    fails them). Memory-backed: what is written counts against the container's memory limit."""
    shm = settings.shm_size_gpu if gpus else settings.shm_size_cpu
    return [
        ({"name": "tmp", "emptyDir": {}}, {"name": "tmp", "mountPath": "/tmp"}),
        ({"name": "cache", "emptyDir": {}}, {"name": "cache", "mountPath": CACHE_MOUNT}),
        (
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm}},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ),
    ]


def workspace_volume(ws: Workspace) -> tuple[dict[str, Any], dict[str, Any]]:
    volume = {"name": "workspace", "persistentVolumeClaim": {"claimName": ws.claim_name}}
    mount: dict[str, Any] = {"name": "workspace", "mountPath": WORKSPACE_MOUNT}
    if ws.sub_path:
        mount["subPath"] = ws.sub_path
    return volume, mount


def config_volume(config_map: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        {"name": "config", "configMap": {"name": config_map}},
        {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
    )


#: a Job's own run config files ride on its pod template as annotations ``config.labrador.dev/<file>``, mounted at
#: CONFIG_MOUNT by a downward-API volume: no ConfigMap to create, watch or clean up, and `kubectl get job -o yaml`
#: shows what the pods run with (a pod's annotations may hold 256 KiB; a run config is ~1-2 KiB)
CONFIG_ANNOTATION_PREFIX = "config.labrador.dev/"


def attach_config(job: Manifest, files: Mapping[str, str]) -> Manifest:
    """``job`` with ``files`` (name -> content) readable by its main container under CONFIG_MOUNT."""
    template = job["spec"]["template"]
    template["metadata"]["annotations"] |= {CONFIG_ANNOTATION_PREFIX + name: text for name, text in files.items()}
    items = [
        {"path": name, "fieldRef": {"fieldPath": f"metadata.annotations['{CONFIG_ANNOTATION_PREFIX}{name}']"}}
        for name in sorted(files)
    ]
    pod = template["spec"]
    pod["volumes"] = merge_by_name(pod["volumes"], [{"name": "config", "downwardAPI": {"items": items}}])
    main = pod["containers"][0]
    # mounts are not merged by name: one volume (a shared claim) may be mounted at several paths
    main["volumeMounts"] = [
        *(m for m in main["volumeMounts"] if m["name"] != "config"),
        {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
    ]
    return job


def share_claims(
    volumes: list[dict[str, Any]], mounts: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One pod volume per PersistentVolumeClaim: later volumes of a claim already in the pod are dropped and their
    mounts use the first one (read-only mounts stay read-only). A kubelet never starts a pod that names one claim in
    two volumes: it waits on the second mount until its timeout (seen on a real node with the workspace claim
    holding the teacher too)."""
    first: dict[str, str] = {}
    rename: dict[str, str] = {}
    kept = []
    for v in volumes:
        claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
        if claim and claim in first:
            rename[v["name"]] = first[claim]
            continue
        if claim:
            first[claim] = v["name"]
        kept.append(v)
    return kept, [{**m, "name": rename.get(m["name"], m["name"])} for m in mounts]


def container_resources(res: BaseResources, gpus: int) -> dict[str, Any]:
    requests: dict[str, Any] = {"cpu": str(res.cpu), "memory": str(res.memory)}
    limits: dict[str, Any] = {"memory": str(res.memory)}
    if gpus:
        requests[GPU_RESOURCE] = str(gpus)
        limits[GPU_RESOURCE] = str(gpus)
    return {"requests": requests, "limits": limits}


def tolerations(res: BaseResources, gpus: int) -> list[dict[str, Any]]:
    items: list[Toleration] = list(res.tolerations or [])
    if gpus and GPU_TOLERATION not in items:
        items.append(GPU_TOLERATION)
    return [t.wire() for t in items]


def placement(res: BaseResources, gpus: int) -> dict[str, Any]:
    """Where a pod may run: its tolerations (the GPU taint's with GPUs), nodeSelector and priorityClassName, the
    fields that are set (a pod spec's, or a KServe predictor's, which takes the same)."""
    out: dict[str, Any] = {}
    tol = tolerations(res, gpus)
    if tol:
        out["tolerations"] = tol
    if res.node_selector:
        out["nodeSelector"] = dict(res.node_selector)
    if res.priority_class_name:
        out["priorityClassName"] = res.priority_class_name
    return out


def pod_spec(
    *,
    settings: Settings,
    command: list[str],
    env: list[dict[str, Any]],
    resources: BaseResources,
    gpus: int,
    workspace: Workspace,
    config_map: str | None = None,
    ports: list[dict[str, Any]] | None = None,
    subdomain: str | None = None,
    models: list[ModelMount] | None = None,
    extra_volumes: list[tuple[dict[str, Any], dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The pod spec every workload runs with: argv only, PSS-restricted, workspace and models mounted.

    Models that are not on a PVC are fetched into the workspace cache by an init container first; a model's
    ``fetch_volumes`` (an oci:// registry config) are the pod's but mounted by that init container only.
    """
    ws_volume, ws_mount = workspace_volume(workspace)
    volumes, mounts = [ws_volume], [ws_mount]
    scratch = scratch_volumes(gpus, settings)
    for volume, mount in scratch:
        volumes.append(volume)
        mounts.append(mount)
    if config_map:
        cv, cm = config_volume(config_map)
        volumes.append(cv)
        mounts.append(cm)
    for volume, mount in extra_volumes or []:
        volumes.append(volume)
        mounts.append(mount)
    init_containers = []
    for m in models or []:
        volumes = merge_by_name(volumes, [*m.volumes, *m.fetch_volumes])
        mounts = merge_by_name(mounts, m.mounts)
    volumes, mounts = share_claims(volumes, mounts)
    for i, m in enumerate(models or []):
        if m.fetch:
            init: dict[str, Any] = {
                "name": f"fetch-model-{i}",
                "image": settings.workload_image,
                "imagePullPolicy": settings.image_pull_policy,
                "command": m.fetch,
                "volumeMounts": [ws_mount, *(mount for _, mount in scratch[:2]), *m.fetch_mounts],
                "securityContext": restricted_security_context(),
                "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}},
            }
            if m.env_from:
                init["envFrom"] = m.env_from
            init_containers.append(init)
    container: dict[str, Any] = {
        "name": "main",
        "image": settings.workload_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": command,
        "env": merge_by_name(
            [env_value("PYTHONUNBUFFERED", "1"), *(env_value(k, v) for k, v in settings.workload_env.items())], env
        ),
        "resources": container_resources(resources, gpus),
        "volumeMounts": mounts,
        "securityContext": restricted_security_context(),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if ports:
        container["ports"] = ports
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": volumes,
        "securityContext": {
            "runAsNonRoot": True,
            # the trainer image's own user (it has a passwd entry: ssh refuses a uid without one)
            "runAsUser": settings.workload_uid,
            "runAsGroup": settings.workload_uid,
            "fsGroup": settings.workload_uid,
            # chown a volume only when its root does not already match: a large workspace is not walked each start
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,  # no workload talks to the API server
    }
    spec |= placement(resources, gpus)
    if subdomain:
        spec["subdomain"] = subdomain
    if init_containers:
        spec["initContainers"] = init_containers
    return spec


def job(
    *,
    meta: dict[str, Any],
    pod: dict[str, Any],
    settings: Settings,
    run_policy: RunPolicy,
    completions: int = 1,
    parallelism: int | None = None,
    indexed: bool = False,
    backoff_limit: int | None = None,
    active_deadline_seconds: int | None = None,
    pod_metadata: PodMetadata | None = None,
    user_error_exit_codes: tuple[int, ...] | None = None,
) -> Manifest:
    """A batch/v1 Job, built in ordered steps: base → failure policy → run policy → Kueue."""
    extra = pod_metadata
    template_meta: dict[str, Any] = {
        # the user's labels and annotations first: Labrador's own keys win
        "labels": {**((extra.labels if extra else None) or {}), **meta["labels"]},
        "annotations": {
            **((extra.annotations if extra else None) or {}),
            **settings.pod_annotations,
            **meta.get("annotations", {}),
        },
    }
    spec: dict[str, Any] = {
        "completions": completions,
        "parallelism": completions if parallelism is None else parallelism,
        "backoffLimit": run_policy.backoff_limit if backoff_limit is None else backoff_limit,
        "template": {"metadata": template_meta, "spec": pod},
        # A user error fails the Job at once; a preempted run (saved its state) or an evicted pod is retried
        # without counting against backoffLimit.
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": "main",
                        "operator": "In",
                        "values": list(user_error_exit_codes or settings.user_error_exit_codes),
                    },
                },
                {
                    "action": "Ignore",
                    "onExitCodes": {
                        "containerName": "main",
                        "operator": "In",
                        "values": [settings.preempted_exit_code],
                    },
                },
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            ]
        },
    }
    if indexed:
        spec["completionMode"] = "Indexed"
    deadline = run_policy.active_deadline_seconds if active_deadline_seconds is None else active_deadline_seconds
    if deadline:
        spec["activeDeadlineSeconds"] = deadline
    if run_policy.ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = run_policy.ttl_seconds_after_finished
    meta = copy.deepcopy(meta)
    if run_policy.queue_name:
        meta["labels"][KUEUE_QUEUE_LABEL] = run_policy.queue_name
        spec["suspend"] = True  # Kueue admits it by un-suspending
    elif run_policy.suspend:
        spec["suspend"] = True
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}


def config_map(meta: dict[str, Any], data: Mapping[str, str]) -> Manifest:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": dict(data)}


def headless_service(meta: dict[str, Any], job_name: str, port: int) -> Manifest:
    """Stable DNS for the pods of an Indexed Job: ``<job>-<index>.<service>``."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {"batch.kubernetes.io/job-name": job_name},
            "ports": [{"name": "rendezvous", "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }
