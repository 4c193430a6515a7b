"""What the operator observes of its children, reduced to small typed records (what the cache holds).

Pure: dicts from the API in, frozen dataclasses out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from labrador_operator.constants import ANNOTATION_OWNER, ANNOTATION_SERVE_HASH, LABEL_KIND, LABEL_NAME, LABEL_PHASE

MAX_TERMINATION_MESSAGE = 4096


@dataclass(frozen=True, slots=True)
class JobState:
    name: str
    role: str
    completions: int
    active: int = 0
    ready: int = 0
    succeeded: int = 0
    failed: int = 0
    complete: bool = False
    failed_terminal: bool = False
    failure_reason: str = ""
    failure_message: str = ""
    suspended: bool = False
    suspend_requested: bool = False
    start_time: str | None = None
    completion_time: str | None = None
    uid: str = ""
    #: uid of the controller ownerReference: the parent that made the Job (labels alone can be copied by anyone)
    owner_uid: str = ""
    created: str | None = None

    @property
    def finished(self) -> bool:
        return self.complete or self.failed_terminal

    @property
    def running(self) -> bool:
        return not self.finished and not self.suspended


@dataclass(frozen=True, slots=True)
class PodState:
    name: str
    job: str
    index: int
    phase: str
    ip: str | None
    exit_code: int | None = None
    result: dict[str, Any] | None = None
    #: why the pod is not making progress, as the kubelet or scheduler said it (Unschedulable, ImagePullBackOff,
    #: CrashLoopBackOff, OOMKilled, ...), with their message; "" when nothing is wrong
    problem: str = ""
    problem_message: str = ""
    #: uid of the Job that owns the pod (of the ReplicaSet, for a serving pod)
    owner_uid: str = ""
    #: the pod's labrador.dev/phase label: its Job's role, or "serve"/"serve-base" for the serving Deployments' pods
    role: str = ""


#: the roles of the serving Deployments and their pods
SERVE_ROLES = ("serve", "serve-base")


@dataclass(frozen=True, slots=True)
class DeploymentState:
    """A serving Deployment as its controller reports it."""

    name: str
    role: str
    replicas: int
    ready: int = 0
    #: the Deployment controller has seen the latest spec (status.observedGeneration == metadata.generation)
    current: bool = True
    #: Progressing=False ProgressDeadlineExceeded: its pods did not become ready in time
    stalled: str = ""
    owner_uid: str = ""
    #: the hash of the spec it was built from (reconcile/serving.py)
    spec_hash: str = ""


@dataclass(frozen=True, slots=True)
class InferenceServiceState:
    """A KServe InferenceService (spec.serve.runtime kserve) as KServe's controller reports it."""

    name: str
    role: str
    #: its Ready condition: "True", "False" or "Unknown" ("" before KServe has said anything)
    ready: str = ""
    reason: str = ""
    message: str = ""
    #: status.url (else status.address.url): where the model is served
    url: str = ""
    #: KServe could not load the model (status.modelStatus.transitionStatus BlockedByFailedLoad or InvalidSpec)
    failed: str = ""
    #: KServe has seen the latest spec (status.observedGeneration, when it reports one, == metadata.generation)
    current: bool = True
    owner_uid: str = ""
    spec_hash: str = ""


#: container waiting reasons that mean the pod will not start by itself: the user (or the platform) must act
STUCK_WAITING = frozenset(
    {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CrashLoopBackOff", "CreateContainerConfigError",
     "CreateContainerError", "RunContainerError"}
)  # fmt: skip


def pod_problem(status: dict[str, Any]) -> tuple[str, str]:
    """(reason, message) of what keeps a pod from running or finishing, from its status; ("", "") when none."""
    for c in status.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable":
            return "Unschedulable", str(c.get("message") or "no node fits the pod")[:500]
    for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        state, last = cs.get("state") or {}, cs.get("lastState") or {}
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in STUCK_WAITING:
            msg = waiting.get("message") or ""
            if waiting["reason"] == "CrashLoopBackOff" and (last.get("terminated") or {}).get("reason") == "OOMKilled":
                return "OOMKilled", f"container {cs.get('name')} was killed for exceeding its memory limit, restarting"
            return str(waiting["reason"]), f"container {cs.get('name')}: {msg}".rstrip(": ")[:500]
        for term in (state.get("terminated") or {}, last.get("terminated") or {}):
            if term.get("reason") == "OOMKilled":
                return "OOMKilled", (
                    f"container {cs.get('name')} was killed for exceeding its memory limit: raise resources.memory"
                )
    return "", ""


@dataclass
class Children:
    """A parent's children as seen in the cache: Jobs and Pods by name, other kinds by name only."""

    jobs: dict[str, JobState] = field(default_factory=dict)
    pods: dict[str, PodState] = field(default_factory=dict)
    config_maps: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    deployments: dict[str, DeploymentState] = field(default_factory=dict)
    inference_services: dict[str, InferenceServiceState] = field(default_factory=dict)
    #: whether the cluster serves KServe's InferenceService API: not in the cache, the runtime asks the API server's
    #: discovery (controller/runtime.py ``with_kserve``) for a job that wants runtime kserve; None: not asked
    kserve_installed: bool | None = None
    #: Jobs whose pods the API server refused to create (quota, LimitRange, Pod Security): job name -> (reason,
    #: message) from the Job controller's FailedCreate Event, the only place Kubernetes says it (handlers/apply.py)
    job_problems: dict[str, tuple[str, str]] = field(default_factory=dict)

    def missing_pods(self, job: str) -> bool:
        """The Job should have pods it has not got: not finished, not suspended, fewer live pods than it still needs
        (every Labrador Job runs all its completions in parallel)."""
        j = self.jobs.get(job)
        if j is None or j.finished or j.suspended or j.suspend_requested:
            return False
        live = sum(1 for p in self.pods.values() if p.job == job and p.phase in ("Pending", "Running"))
        return live < j.completions - j.succeeded

    def result(self, job: str) -> dict[str, Any] | None:
        """The termination message (JSON) of the job's index-0 pod: the attempt that succeeded (exit 0) when there is
        one — after retries the failed attempts' messages are still there — else the last that finished."""
        done = [p for p in self.pods.values() if p.job == job and p.index == 0 and p.result is not None]
        ok = [p for p in done if p.exit_code == 0]
        pick = ok or done
        return pick[-1].result if pick else None

    def owned_by(self, parent_uid: str) -> Children:
        """Only the Jobs the parent itself owns (controller ownerReference uid) and the pods those Jobs own: a pod or
        Job that merely carries Labrador's labels cannot inject a result or a state."""
        jobs = {n: j for n, j in self.jobs.items() if j.owner_uid == parent_uid}
        uids = {j.uid for j in jobs.values() if j.uid}
        # serving pods belong to ReplicaSets the cache does not keep: only their problems are read (no results)
        pods = {n: p for n, p in self.pods.items() if p.owner_uid in uids or p.role in SERVE_ROLES}
        return Children(
            jobs=jobs,
            pods=pods,
            config_maps=set(self.config_maps),
            services=set(self.services),
            deployments={n: d for n, d in self.deployments.items() if d.owner_uid == parent_uid},
            inference_services={n: i for n, i in self.inference_services.items() if i.owner_uid == parent_uid},
            kserve_installed=self.kserve_installed,
            job_problems={n: v for n, v in self.job_problems.items() if n in jobs},
        )

    def problem(self, *jobs: str) -> tuple[str, str] | None:
        """The first pod problem among the live pods of ``jobs`` (a pod that failed for good says it in the Job), else
        a refusal to create their pods."""
        for p in sorted(self.pods.values(), key=lambda p: (p.job, p.index, p.name)):
            if p.job in jobs and p.problem and p.phase in ("Pending", "Running", "Failed"):
                return p.problem, p.problem_message
        return next((self.job_problems[j] for j in jobs if j in self.job_problems), None)

    def serve_problem(self, role: str) -> tuple[str, str] | None:
        """The first problem of a live serving pod of ``role`` ("serve" or "serve-base")."""
        for p in sorted(self.pods.values(), key=lambda p: p.name):
            if p.role == role and p.problem and p.phase in ("Pending", "Running"):
                return p.problem, p.problem_message
        return None

    def rank0(self, job: str) -> PodState | None:
        running = [p for p in self.pods.values() if p.job == job and p.index == 0 and p.phase == "Running" and p.ip]
        return running[0] if running else None


def parent_key(obj: dict[str, Any]) -> tuple[str, str, str] | None:
    """(namespace, parent kind, parent name) from a child's labels, or None for foreign objects."""
    meta = obj.get("metadata", {})
    lab = meta.get("labels") or {}
    owners = [o for o in meta.get("ownerReferences") or [] if o.get("controller")]
    if LABEL_KIND not in lab:
        return None
    # the annotation and the owner reference carry the full parent name (labels may be shortened)
    name = (meta.get("annotations") or {}).get(ANNOTATION_OWNER)
    if not name and owners and owners[0].get("kind", "").lower() == lab[LABEL_KIND]:
        name = owners[0]["name"]
    name = name or lab.get(LABEL_NAME)
    if not name:
        return None
    return meta.get("namespace", ""), lab[LABEL_KIND], name


def _controller_uid(meta: dict[str, Any]) -> str:
    return next((str(o.get("uid", "")) for o in meta.get("ownerReferences") or [] if o.get("controller")), "")


def job_state(obj: dict[str, Any]) -> JobState:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status") or {}
    conds = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
    failed = conds.get("Failed")
    return JobState(
        name=meta.get("name", ""),
        role=(meta.get("labels") or {}).get(LABEL_PHASE, ""),
        completions=int(spec.get("completions") or 1),
        active=int(status.get("active") or 0),
        ready=int(status.get("ready") or 0),
        succeeded=int(status.get("succeeded") or 0),
        failed=int(status.get("failed") or 0),
        complete="Complete" in conds,
        failed_terminal=failed is not None,
        failure_reason=(failed or {}).get("reason", ""),
        failure_message=(failed or {}).get("message", ""),
        suspended="Suspended" in conds,
        suspend_requested=bool(spec.get("suspend")),
        start_time=status.get("startTime"),
        completion_time=status.get("completionTime") or (failed or {}).get("lastTransitionTime"),
        uid=str(meta.get("uid", "")),
        owner_uid=_controller_uid(meta),
        created=meta.get("creationTimestamp"),
    )


def _parse_result(message: str | None) -> dict[str, Any] | None:
    if not message:
        return None
    try:
        value = json.loads(message[:MAX_TERMINATION_MESSAGE])
    except ValueError:
        return {"message": message[:512]}
    return value if isinstance(value, dict) else {"message": str(value)[:512]}


def pod_state(obj: dict[str, Any]) -> PodState:
    meta, status = obj.get("metadata", {}), obj.get("status") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    index = annotations.get("batch.kubernetes.io/job-completion-index") or labels.get(
        "batch.kubernetes.io/job-completion-index", "0"
    )
    exit_code, result = None, None
    for cs in status.get("containerStatuses") or []:
        if cs.get("name") != "main":
            continue
        term = (cs.get("state") or {}).get("terminated")
        if term:
            exit_code = term.get("exitCode")
            result = _parse_result(term.get("message"))
    problem, problem_message = pod_problem(status)
    return PodState(
        name=meta.get("name", ""),
        job=labels.get("batch.kubernetes.io/job-name") or labels.get("job-name", ""),
        index=int(index) if str(index).isdigit() else 0,
        phase=status.get("phase", "Pending"),
        ip=status.get("podIP"),
        exit_code=exit_code,
        result=result,
        problem=problem,
        problem_message=problem_message,
        owner_uid=_controller_uid(meta),
        role=labels.get(LABEL_PHASE, ""),
    )


def deployment_state(obj: dict[str, Any]) -> DeploymentState:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status") or {}
    stalled = next(
        (
            str(c.get("message") or "ProgressDeadlineExceeded")
            for c in status.get("conditions") or []
            if c.get("type") == "Progressing" and c.get("status") == "False"
        ),
        "",
    )
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    return DeploymentState(
        name=meta.get("name", ""),
        role=(meta.get("labels") or {}).get(LABEL_PHASE, ""),
        replicas=int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1),
        ready=int(status.get("readyReplicas") or 0),
        current=generation is None or observed == generation,
        stalled=stalled[:500],
        owner_uid=_controller_uid(meta),
        spec_hash=(meta.get("annotations") or {}).get(ANNOTATION_SERVE_HASH, ""),
    )


def inference_service_state(obj: dict[str, Any]) -> InferenceServiceState:
    meta, status = obj.get("metadata", {}), obj.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    model = status.get("modelStatus") or {}
    failed = ""
    if model.get("transitionStatus") in ("BlockedByFailedLoad", "InvalidSpec"):
        info = model.get("lastFailureInfo") or {}
        failed = ": ".join(str(x) for x in (info.get("reason"), info.get("message")) if x) or model["transitionStatus"]
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    return InferenceServiceState(
        name=meta.get("name", ""),
        role=(meta.get("labels") or {}).get(LABEL_PHASE, ""),
        ready=str(ready.get("status") or ""),
        reason=str(ready.get("reason") or "")[:200],
        message=str(ready.get("message") or "")[:500],
        url=str(status.get("url") or (status.get("address") or {}).get("url") or "")[:1024],
        failed=failed[:500],
        current=generation is None or observed is None or observed == generation,
        owner_uid=_controller_uid(meta),
        spec_hash=(meta.get("annotations") or {}).get(ANNOTATION_SERVE_HASH, ""),
    )


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def now_iso(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_between(start: str | None, end: str | None) -> float:
    a, b = parse_time(start), parse_time(end)
    return max((b - a).total_seconds(), 0.0) if a and b else 0.0
