"""Deciding a FineTuneJob: from its spec, its observed children and its data dependency to a Plan. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from labrador_operator.api.finetune import ConditionType, FineTuneJobSpec, Phase, Reason
from labrador_operator.builders import finetune as b
from labrador_operator.reconcile.common import done_progress, finished, job_failure
from labrador_operator.reconcile.observe import Children, JobState, seconds_between
from labrador_operator.reconcile.plan import Plan, condition
from labrador_operator.reconcile.results import EvaluateResult, TrainResult, lenient
from labrador_operator.settings import Settings


@dataclass(frozen=True)
class DataDependency:
    """The training data as far as it is known: ready paths, or why not (waiting / failed)."""

    data: b.Data | None = None
    waiting: str = ""  # reason: WaitingForSyntheticData or SyntheticDataJobNotFound
    failed: str = ""  # message when the SyntheticDataJob failed
    message: str = ""


def explicit_data(spec: FineTuneJobSpec) -> DataDependency | None:
    if spec.data.synthetic_data_job_ref is None:
        return DataDependency(data=b.Data(knowledge=spec.data.knowledge_path, skills=spec.data.skills_path))
    return None


def data_from_sdg(spec: FineTuneJobSpec, sdg: dict[str, Any] | None) -> DataDependency:
    """Data from the referenced SyntheticDataJob object (None when it does not exist)."""
    explicit = explicit_data(spec)
    if explicit:
        return explicit
    ref = spec.data.synthetic_data_job_ref
    assert ref is not None
    if sdg is None:
        return DataDependency(
            waiting=Reason.DATA_NOT_FOUND, message=f"SyntheticDataJob {ref.name} does not exist in this namespace"
        )
    status = sdg.get("status") or {}
    phase = status.get("phase")
    if phase == "Failed":
        return DataDependency(failed=f"SyntheticDataJob {ref.name} failed")
    outputs = status.get("outputs") or {}
    if phase != "Succeeded" or not (outputs.get("knowledge") or outputs.get("skills")):
        return DataDependency(
            waiting=Reason.WAITING_FOR_DATA,
            message=f"waiting for SyntheticDataJob {ref.name} to succeed (phase {phase or 'Pending'})",
        )
    replay = ((sdg.get("spec") or {}).get("mixing") or {}).get("replay") or []
    return DataDependency(
        data=b.Data(
            knowledge=outputs.get("knowledge"),
            skills=outputs.get("skills"),
            multiple_choice=outputs.get("multipleChoice"),
            held_out=outputs.get("heldOut"),
            general=tuple(str(r["path"]) for r in replay if isinstance(r, dict) and r.get("path")),
        )
    )


def _gang_verdict(job: JobState) -> str:
    """Why a multi-node phase attempt failed, from its Job's failure (see builders.finetune.build_phase_job):
    user (exit 2: fix the spec), preempted (saved its state, or disrupted: not counted), deadline, or crash."""
    if job.failure_reason == "DeadlineExceeded":
        return "deadline"
    if job.failure_reason == "PodFailurePolicy":
        rule = re.search(r"rule at index (\d+)", job.failure_message)
        index = int(rule.group(1)) if rule else b.GANG_RULE_USER_ERROR
        return "user" if index == b.GANG_RULE_USER_ERROR else "preempted"
    return "crash"


def _gang_restart(spec: FineTuneJobSpec, attempts: list[JobState]) -> bool | tuple[str, str] | None:
    """The failed last attempt of a multi-node phase: True to start the next attempt (a preemption, or a crash
    within runPolicy.backoffLimit), a (reason, message) failure when the crashes are spent, None for a failure
    that no restart can mend (user error, deadline)."""
    verdict = _gang_verdict(attempts[-1])
    if verdict in ("user", "deadline"):
        return None
    crashes = sum(1 for j in attempts if j.failed_terminal and _gang_verdict(j) == "crash")
    limit = spec.run_policy.backoff_limit
    if verdict == "preempted" or crashes <= limit:
        return True
    return Reason.BACKOFF_LIMIT_EXCEEDED, (
        f"phase failed {crashes} times as a group of {spec.resources.nodes} pods (runPolicy.backoffLimit {limit}); "
        f"last: {attempts[-1].failure_message or attempts[-1].failure_reason}"
    )[:1000]


def _phase_entry(
    name: str, job: JobState | None, select: JobState | None, result: dict[str, Any] | None, gpus: int
) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "state": "Pending"}
    if job is None:
        return entry
    if job.start_time:
        entry["startTime"] = job.start_time
    last = select or job
    if job.failed_terminal or (select is not None and select.failed_terminal):
        entry["state"] = "Failed"
    elif job.complete and (select is None or select.complete):
        entry["state"] = "Succeeded"
    elif job.ready or job.succeeded:
        entry["state"] = "Running"
    if last.finished and last.completion_time:
        entry["completionTime"] = last.completion_time
    if job.finished:
        entry["gpuSeconds"] = round(seconds_between(job.start_time, job.completion_time) * gpus, 1)
    if result:
        r = lenient(TrainResult, result)
        if r.final_loss is not None:
            entry["finalLoss"] = r.final_loss
        if r.tokens is not None:
            entry["tokens"] = r.tokens
        if r.dtype:
            entry["dtype"] = r.dtype
        if r.checkpoints:
            entry["checkpoints"] = [c[:1024] for c in r.checkpoints[:100]]
        if r.best_checkpoint:
            entry["bestCheckpoint"] = r.best_checkpoint
    return entry


def plan(
    *,
    owner: b.Owner,
    spec: FineTuneJobSpec,
    generation: int | None,
    status: dict[str, Any] | None,
    children: Children,
    dep: DataDependency,
    settings: Settings,
) -> Plan:
    status = status or {}
    if finished(status, generation):
        return Plan()  # terminal: children may be gone (ttlSecondsAfterFinished); never start over
    prev = status.get("conditions")
    out = Plan()
    conds: list[dict[str, Any]] = []

    def cond(t: str, s: bool, reason: str, msg: str = "") -> None:
        conds.append(condition(t, s, reason, msg, generation, prev))

    def finish(phase: Phase, **fields: Any) -> Plan:
        out.status = {"phase": phase.value, "observedGeneration": generation, "conditions": conds, **fields}
        return out

    # 1. data dependency
    if dep.failed:
        cond(ConditionType.DATA_READY, False, Reason.DATA_FAILED, dep.failed)
        cond(ConditionType.READY, False, Reason.DATA_FAILED, dep.failed)
        cond(ConditionType.FAILED, True, Reason.DATA_FAILED, dep.failed)
        return finish(Phase.FAILED)
    if dep.data is None:
        cond(ConditionType.DATA_READY, False, dep.waiting, dep.message)
        cond(ConditionType.READY, False, dep.waiting, dep.message)
        return finish(Phase.WAITING)
    cond(ConditionType.DATA_READY, True, Reason.DATA_READY, "")

    suspend = spec.run_policy.suspend
    gpus = spec.resources.nodes * max(spec.resources.gpus_per_node, 0)

    # 2. suspend / resume existing Jobs (Kueue owns the flag when queueName is set)
    for job in children.jobs.values():
        if job.finished:
            continue
        if suspend and not job.suspend_requested:
            out.patch.append(("Job", job.name, {"spec": {"suspend": True}}))
        elif not suspend and job.suspend_requested and not spec.run_policy.queue_name:
            out.patch.append(("Job", job.name, {"spec": {"suspend": False}}))

    def ensure(manifest: dict[str, Any] | None, existing: set[str] | dict[str, Any]) -> None:
        if manifest is not None and manifest["metadata"]["name"] not in existing and not suspend:
            out.create.append(manifest)

    if b.config_map_name(owner) not in children.config_maps:  # built only when missing: JSON of every phase
        ensure(b.build_config_map(owner, spec, dep.data, settings), children.config_maps)

    # 3. phases in order
    phases: list[dict[str, Any]] = []
    current: str | None = None
    failure: tuple[str, str] | None = None
    restarts = 0
    tokens = 0
    gpu_seconds = 0.0
    all_done = True
    current_job: str | None = None
    for phase in spec.phases:
        attempts = b.phase_attempts(owner, phase.name, children.jobs)
        job_name = attempts[-1] if attempts else b.phase_job_name(owner, phase.name)
        job = children.jobs.get(job_name)
        select = children.jobs.get(b.select_job_name(owner, phase.name))
        result = children.result(job_name)
        sel_result = children.result(b.select_job_name(owner, phase.name)) if select else None
        entry = _phase_entry(phase.name, job, select, {**(result or {}), **(sel_result or {})}, gpus)
        phases.append(entry)
        restarts += sum(children.jobs[a].failed for a in attempts)
        tokens += int(entry.get("tokens", 0))
        gpu_seconds += float(entry.get("gpuSeconds", 0.0))
        if failure or not all_done:
            continue
        if job is None:
            ensure(b.build_phase_service(owner, spec, phase.name, settings), children.services)
            ensure(b.build_phase_job(owner, spec, phase.name, settings), children.jobs)
            current, current_job, all_done = phase.name, job_name, False
            continue
        if job.failed_terminal:
            retry = _gang_restart(spec, [children.jobs[a] for a in attempts]) if spec.resources.nodes > 1 else None
            if retry is None or isinstance(retry, tuple):
                failure = retry or job_failure(job)
                current = phase.name
                continue
            n = len(attempts)  # the next attempt, as a whole group: it resumes from the phase's last saved state
            ensure(b.build_phase_service(owner, spec, phase.name, settings, n), children.services)
            ensure(b.build_phase_job(owner, spec, phase.name, settings, n), children.jobs)
            phases[-1] = {k: v for k, v in entry.items() if k in ("name", "startTime", "gpuSeconds")} | {
                "state": "Running"
            }
            current, current_job, all_done = phase.name, b.phase_job_name(owner, phase.name, n), False
            continue
        if not job.complete:
            current, current_job, all_done = phase.name, job_name, False
            continue
        if spec.evaluation.checkpoint_selection == "best":
            if select is None:
                ensure(b.build_select_job(owner, spec, phase.name, settings), children.jobs)
                current, all_done = phase.name, False
            elif select.failed_terminal:
                failure, current = job_failure(select), phase.name
            elif not select.complete:
                current, all_done = phase.name, False

    fields: dict[str, Any] = {"phases": phases, "restarts": restarts}
    starts = [j.start_time for j in children.jobs.values() if j.start_time]
    if starts:
        fields["startTime"] = min(starts)
    if current:
        fields["currentPhase"] = current
    usage = {"gpuSeconds": round(gpu_seconds, 1), "tokens": tokens}

    if failure:
        reason, message = failure
        cond(ConditionType.RUNNING, False, reason, message)
        cond(ConditionType.READY, False, reason, message)
        cond(ConditionType.FAILED, True, reason, message)
        fields["completionTime"] = max(
            (j.completion_time for j in children.jobs.values() if j.completion_time), default=None
        )
        return finish(Phase.FAILED, usage=usage, **{k: v for k, v in fields.items() if v is not None})

    if suspend and not all_done:
        cond(ConditionType.SUSPENDED, True, Reason.SUSPENDED, "runPolicy.suspend is true")
        cond(ConditionType.RUNNING, False, Reason.SUSPENDED, "runPolicy.suspend is true")
        cond(ConditionType.READY, False, Reason.SUSPENDED, "")
        return finish(Phase.SUSPENDED, usage=usage, **fields)
    cond(ConditionType.SUSPENDED, False, Reason.TRAINING if not all_done else Reason.SUCCEEDED, "")

    if not all_done:
        running = any(j.running and (j.ready or j.succeeded) for j in children.jobs.values())
        assert current is not None
        problem = children.problem(current_job or b.phase_job_name(owner, current), b.select_job_name(owner, current))
        if problem is not None:  # the pods' own words: the user (or the platform) has to act
            cond(ConditionType.RUNNING, False, problem[0], f"phase {current}: {problem[1]}")
        elif running:
            cond(ConditionType.RUNNING, True, Reason.TRAINING, f"phase {current}")
        else:
            cond(ConditionType.RUNNING, False, Reason.STARTING, f"phase {current}: waiting for its pods to start")
        cond(ConditionType.READY, False, Reason.TRAINING, f"training phase {current}")
        # between two phases (the next Job created, its pods not yet up) the job is still Running, not Pending
        # (or between two attempts of a phase restarted as a group: anything that ran before counts)
        started = running or restarts > 0 or any(p.get("state") in ("Succeeded", "Running") for p in phases)
        return finish(Phase.RUNNING if started else Phase.PENDING, usage=usage, **fields)

    # 4. evaluation, then done
    model_out = b.output_dir(owner, spec)
    outputs: dict[str, Any] = {"model": model_out}
    if spec.evaluation.enabled:
        ev = children.jobs.get(b.evaluate_job_name(owner))
        if ev is None or not ev.finished:
            if ev is None:
                ensure(b.build_evaluate_job(owner, spec, settings), children.jobs)
            cond(ConditionType.RUNNING, True, Reason.EVALUATING, "evaluating base vs tuned")
            cond(ConditionType.READY, False, Reason.EVALUATING, "")
            fields.pop("currentPhase", None)
            return finish(Phase.EVALUATING, usage=usage, **fields)
        if ev.failed_terminal:
            reason, message = job_failure(ev)
            cond(ConditionType.RUNNING, False, reason, message)
            cond(ConditionType.READY, False, reason, message)
            cond(ConditionType.FAILED, True, reason, message)
            return finish(Phase.FAILED, usage=usage, completionTime=ev.completion_time, **fields)
        report = lenient(EvaluateResult, children.result(b.evaluate_job_name(owner)))
        outputs["evaluation"] = {
            k2: getattr(report, k1)
            for k1, k2 in (
                ("report", "report"),
                ("base_score", "baseScore"),
                ("tuned_score", "tunedScore"),
                ("forgetting_delta", "forgettingDelta"),
            )
            if getattr(report, k1) is not None
        }
    fields.pop("currentPhase", None)
    cond(ConditionType.RUNNING, False, Reason.SUCCEEDED, "")
    cond(ConditionType.READY, True, Reason.SUCCEEDED, f"model at {model_out}")
    cond(ConditionType.FAILED, False, Reason.SUCCEEDED, "")
    done = max((j.completion_time for j in children.jobs.values() if j.completion_time), default=None)
    if done:
        fields["completionTime"] = done
    return finish(Phase.SUCCEEDED, usage=usage, outputs=outputs, **done_progress(status), **fields)
