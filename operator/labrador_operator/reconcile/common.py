"""What the decisions of the kinds share. Pure.

Every kind: the condition maker (``Conditions``) and the decided status (``Outcome``). The kinds that run a batch of
Jobs (FineTuneJob, SyntheticDataJob): the terminal check, suspending and resuming their Jobs, which children are
missing, why a Job failed, and the conditions they report the same way (failed, suspended, running, succeeded).
Each function returns a value; the kinds' modules (finetune.py, sdg.py, taxonomy.py) put them together into a Plan.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from labrador_operator.api.common import RunPolicy
from labrador_operator.reconcile.observe import JobState
from labrador_operator.reconcile.plan import condition

Manifest = dict[str, Any]
Condition = dict[str, Any]
Patch = tuple[str, str, dict[str, Any]]

#: condition types and reasons spelled the same by every Job-running kind (api.finetune, api.sdg; a unit test holds
#: them equal)
RUNNING, READY, FAILED, SUSPENDED = "Running", "Ready", "Failed", "Suspended"
SUCCEEDED = "Succeeded"
STARTING = "Starting"
DEADLINE_EXCEEDED, USER_ERROR, BACKOFF_LIMIT_EXCEEDED = "DeadlineExceeded", "UserError", "BackoffLimitExceeded"
#: the phases after which a parent never starts over
TERMINAL = (SUCCEEDED, FAILED)
SUSPEND_MESSAGE = "runPolicy.suspend is true"


@dataclass(frozen=True)
class Conditions:
    """Makes one reconcile's conditions: its generation, and the previous conditions (lastTransitionTime moves only
    when a condition's status flips)."""

    generation: int | None
    previous: list[dict[str, Any]] | None

    def __call__(self, type_: str, status: bool | str, reason: str, message: str = "") -> Condition:
        return condition(type_, status, reason, message, self.generation, self.previous)


@dataclass(frozen=True)
class Outcome:
    """A decided status: the phase, its conditions in order, the other fields it sets, and the children it wants
    that do not exist yet (created unless the parent is suspended)."""

    phase: str
    conditions: list[Condition]
    fields: dict[str, Any] = field(default_factory=dict)
    wanted: list[Manifest] = field(default_factory=list)

    def status(self, generation: int | None) -> dict[str, Any]:
        return {
            "phase": str(self.phase),
            "observedGeneration": generation,
            "conditions": self.conditions,
            **self.fields,
        }


def finished(status: dict[str, Any], generation: int | None) -> bool:
    """Succeeded or Failed is final, as for a batch Job: later spec edits (say, a TTL) never rerun the work. A failure
    for an invalid spec is not: a corrected spec runs."""
    invalid_spec = any(c.get("reason") == "InvalidSpec" for c in status.get("conditions") or [])
    return status.get("phase") in TERMINAL and not invalid_spec


def suspension_patches(jobs: Iterable[JobState], run_policy: RunPolicy) -> list[Patch]:
    """Merge patches that suspend (runPolicy.suspend) or resume the unfinished Jobs; with a Kueue queue
    (runPolicy.queueName), Kueue owns the flag and resumes them itself."""
    suspend = run_policy.suspend
    out: list[Patch] = []
    for job in jobs:
        if job.finished:
            continue
        if suspend and not job.suspend_requested:
            out.append(("Job", job.name, {"spec": {"suspend": True}}))
        elif not suspend and job.suspend_requested and not run_policy.queue_name:
            out.append(("Job", job.name, {"spec": {"suspend": False}}))
    return out


def missing(manifest: Manifest | None, existing: Collection[str]) -> list[Manifest]:
    """``[manifest]`` when no child of its name exists (a builder's None: nothing wanted)."""
    if manifest is None or manifest["metadata"]["name"] in existing:
        return []
    return [manifest]


@dataclass(frozen=True)
class OneJob:
    """Where a single-Job step stands (the evaluation, the export): not made yet or running, failed, or done."""

    state: Literal["running", "failed", "done"]
    job: JobState | None = None
    wanted: list[Manifest] = field(default_factory=list)


def one_job(jobs: Mapping[str, JobState], name: str, build: Callable[[], Manifest]) -> OneJob:
    """The step run by Job ``name``: wanted (``build()``) while it does not exist, then as the Job stands."""
    job = jobs.get(name)
    if job is None:
        return OneJob("running", wanted=missing(build(), jobs))
    if not job.finished:
        return OneJob("running", job)
    return OneJob("failed" if job.failed_terminal else "done", job)


def job_failure(job: JobState) -> tuple[str, str]:
    """(reason, message) of a Job that failed for good, in the words a user can act on."""
    if job.failure_reason == "DeadlineExceeded":
        return DEADLINE_EXCEEDED, f"Job {job.name} ran past runPolicy.activeDeadlineSeconds"
    if job.failure_reason == "PodFailurePolicy":
        return USER_ERROR, f"Job {job.name} exited with a user-error code: check its logs and the spec"
    if job.failure_reason == "BackoffLimitExceeded":
        return BACKOFF_LIMIT_EXCEEDED, f"Job {job.name} failed {job.failed} times (runPolicy.backoffLimit)"
    return job.failure_reason or "JobFailed", job.failure_message or f"Job {job.name} failed"


def last_completion(jobs: Iterable[JobState]) -> str | None:
    return max((j.completion_time for j in jobs if j.completion_time), default=None)


def failed_conditions(cond: Conditions, reason: str, message: str) -> list[Condition]:
    return [
        cond(RUNNING, False, reason, message),
        cond(READY, False, reason, message),
        cond(FAILED, True, reason, message),
    ]


def suspended_conditions(cond: Conditions, running_message: str) -> list[Condition]:
    return [
        cond(SUSPENDED, True, SUSPENDED, SUSPEND_MESSAGE),
        cond(RUNNING, False, SUSPENDED, running_message),
        cond(READY, False, SUSPENDED, ""),
    ]


def running_condition(
    cond: Conditions,
    *,
    problem: tuple[str, str] | None,
    running: bool,
    reason: str,
    message: str,
    starting: str,
    problem_prefix: str = "",
) -> Condition:
    """Running: the pods' own words when something keeps them from running (the user or the platform has to act),
    else True (``reason``, ``message``) once they are up, else False (Starting) while they come up."""
    if problem is not None:
        return cond(RUNNING, False, problem[0], f"{problem_prefix}{problem[1]}")
    if running:
        return cond(RUNNING, True, reason, message)
    return cond(RUNNING, False, STARTING, starting)


def succeeded_conditions(cond: Conditions, ready_message: str) -> list[Condition]:
    return [
        cond(RUNNING, False, SUCCEEDED, ""),
        cond(READY, True, SUCCEEDED, ready_message),
        cond(FAILED, False, SUCCEEDED, ""),
    ]


def done_progress(status: dict[str, Any]) -> dict[str, Any]:
    """A finished job's progress reads 100% with nothing left, not the last sample taken while it ran."""
    last = status.get("progress")
    return {"progress": {**last, "percent": 100, "etaSeconds": 0, "eta": "0s"}} if last else {}
