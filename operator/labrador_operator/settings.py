"""What builders and reconciles need beyond the spec: one typed class, read from the environment (the chart sets
them) once, by the operator's configuration (controller/config.py), and passed down."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Settings:
    """What builders need beyond the spec. Test timings are values here, never branches in builders."""

    workload_image: str = "ghcr.io/labrador-dev/labrador-trainer:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    metrics_port: int = 9400  # workload pods serve Prometheus metrics here (rank 0)
    rendezvous_port: int = 29500  # torchrun master port on the headless Service
    progress_interval_seconds: float = 15.0  # each running job's metrics are scraped once per interval
    progress_max_per_second: float = 20.0  # scrapes per second over all jobs (a longer round when more are running)
    progress_concurrency: int = 8  # scrapes in flight at once
    refresh_check_seconds: float = 30.0  # how often Taxonomies with a refreshInterval are checked for a new window
    #: how often the cache is compared with a fresh LIST (deletions a watch relist missed; two misses drop an entry)
    cache_resync_seconds: float = 300.0
    #: threads reconciling (blocked on API writes, not CPU: enough that a burst of new jobs is not queued behind a few)
    reconcile_workers: int = 64
    #: exit codes of labrador-trainer that mean the user's input is wrong: the Job fails at once
    user_error_exit_codes: tuple[int, ...] = (2,)
    #: exit code of a preempted (SIGTERM) run that saved its state: does not count against backoffLimit
    preempted_exit_code: int = 143
    #: extra pod annotations, e.g. to steer kwok in tests ({"labrador.dev/kwok-run-duration": "2s"})
    pod_annotations: dict[str, str] = field(default_factory=dict)
    #: how long a Taxonomy sync pod may run before it is considered failed
    sync_deadline_seconds: int = 1800
    #: uid (and gid, fsGroup) workload pods run as: the trainer image's `labrador` user
    workload_uid: int = 65532
    #: /dev/shm of workload pods (memory-backed emptyDir): GPU pods (NCCL, vLLM tensor parallel), CPU pods
    shm_size_gpu: str = "16Gi"
    shm_size_cpu: str = "1Gi"
    #: environment every workload container gets (the chart's workloadEnv), before the job's own variables
    workload_env: dict[str, str] = field(default_factory=dict)
    #: KServe is installed and the operator may manage InferenceServices (spec.serve.runtime kserve): it watches
    #: and lists them only then (the chart's kserve.enabled grants their RBAC and sets LABRADOR_KSERVE)
    kserve: bool = False

    @classmethod
    def from_env(cls, e: Mapping[str, str]) -> Settings:
        annotations = {}
        for item in filter(None, e.get("LABRADOR_POD_ANNOTATIONS", "").split(",")):
            key, _, value = item.partition("=")
            annotations[key.strip()] = value.strip()
        # a JSON object of strings (the chart's workloadEnv)
        workload_env = {str(k): str(v) for k, v in json.loads(e.get("LABRADOR_WORKLOAD_ENV") or "{}").items()}
        return cls(
            workload_env=workload_env,
            workload_uid=int(e.get("LABRADOR_WORKLOAD_UID", cls.workload_uid)),
            shm_size_gpu=e.get("LABRADOR_SHM_SIZE_GPU", cls.shm_size_gpu),
            shm_size_cpu=e.get("LABRADOR_SHM_SIZE_CPU", cls.shm_size_cpu),
            workload_image=e.get("LABRADOR_WORKLOAD_IMAGE", cls.workload_image),
            image_pull_policy=e.get("LABRADOR_IMAGE_PULL_POLICY", cls.image_pull_policy),
            progress_interval_seconds=float(e.get("LABRADOR_PROGRESS_INTERVAL", cls.progress_interval_seconds)),
            progress_max_per_second=float(e.get("LABRADOR_PROGRESS_MAX_PER_SECOND", cls.progress_max_per_second)),
            refresh_check_seconds=float(e.get("LABRADOR_REFRESH_CHECK_SECONDS", cls.refresh_check_seconds)),
            cache_resync_seconds=float(e.get("LABRADOR_CACHE_RESYNC_SECONDS", cls.cache_resync_seconds)),
            reconcile_workers=int(e.get("LABRADOR_MAX_WORKERS", cls.reconcile_workers)),
            pod_annotations=annotations,
            kserve=e.get("LABRADOR_KSERVE", "").strip().lower() in ("1", "true", "yes"),
        )
