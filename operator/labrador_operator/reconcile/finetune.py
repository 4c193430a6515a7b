"""Deciding a FineTuneJob: from its spec, its observed children and its data dependency to a Plan. Pure.

``plan`` reads top to bottom: the terminal check, the data gate (``finetune_data_gate``), the phase walk
(``finetune_phase_walk``: each phase's status entry, and the first phase not done, ``finetune_phase_step``), the
evaluation after the last phase (``finetune_evaluation``) and the status they come to (``finetune_status``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from labrador_operator.api.finetune import ConditionType, FineTuneJobSpec, Gate, Phase, Reason
from labrador_operator.builders import finetune as b
from labrador_operator.reconcile import common
from labrador_operator.reconcile import serving as srv
from labrador_operator.reconcile.common import Condition, Conditions, Manifest, Outcome
from labrador_operator.reconcile.observe import Children, JobState, seconds_between
from labrador_operator.reconcile.plan import Plan
from labrador_operator.reconcile.results import EvaluateResult, ExportResult, MeasurePair, TrainResult, lenient
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
    if common.finished(status, generation):
        # terminal: children may be gone (ttlSecondsAfterFinished); never start over — only serving goes on
        return finetune_served(owner, spec, generation, status, children, settings)
    cond = Conditions(generation, status.get("conditions"))
    blocked = finetune_data_gate(dep, cond)
    if blocked is not None:
        return Plan(status=blocked.status(generation))
    assert dep.data is not None
    walk = finetune_phase_walk(owner, spec, dep.data, children, settings)
    evaluation = finetune_evaluation(owner, spec, dep.data, children, settings) if walk.step is None else None
    outcome = finetune_status(
        owner=owner,
        spec=spec,
        status=status,
        children=children,
        walk=walk,
        evaluation=evaluation,
        cond=cond,
        settings=settings,
    )
    return Plan(
        create=[] if spec.run_policy.suspend else outcome.wanted,  # a suspended job creates nothing
        patch=common.suspension_patches(children.jobs.values(), spec.run_policy),
        status=outcome.status(generation),
    )


# --- 1. the data ------------------------------------------------------------------------------------------------


def finetune_data_gate(dep: DataDependency, cond: Conditions) -> Outcome | None:
    """Failed when the SyntheticDataJob failed, Waiting while the data is not there yet; None once it is."""
    if dep.failed:
        reason = Reason.DATA_FAILED
        return Outcome(
            Phase.FAILED,
            [
                cond(ConditionType.DATA_READY, False, reason, dep.failed),
                cond(ConditionType.READY, False, reason, dep.failed),
                cond(ConditionType.FAILED, True, reason, dep.failed),
            ],
        )
    if dep.data is None:
        return Outcome(
            Phase.WAITING,
            [
                cond(ConditionType.DATA_READY, False, dep.waiting, dep.message),
                cond(ConditionType.READY, False, dep.waiting, dep.message),
            ],
        )
    return None


# --- 2. the phases in order -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FineTuneStep:
    """The first phase that is not done, and what it waits for."""

    phase: str
    #: the Job whose pods it waits for; None: its first attempt's (and its select Job's)
    job: str | None = None
    #: its children that do not exist yet
    wanted: list[Manifest] = field(default_factory=list)
    #: (reason, message) when it failed for good
    failure: tuple[str, str] | None = None
    #: a multi-node phase started over as a group (its next attempt is wanted)
    restarted: bool = False


@dataclass(frozen=True)
class FineTunePhaseWalk:
    phases: list[dict[str, Any]]
    restarts: int
    tokens: int
    gpu_seconds: float
    #: None when every phase is done
    step: FineTuneStep | None


def finetune_phase_walk(
    owner: b.Owner, spec: FineTuneJobSpec, data: b.Data, children: Children, settings: Settings
) -> FineTunePhaseWalk:
    """Every phase's status entry, and the first phase not done: the phases run one after the other."""
    gpus = spec.resources.nodes * max(spec.resources.gpus_per_node, 0)
    phases: list[dict[str, Any]] = []
    restarts, tokens, gpu_seconds = 0, 0, 0.0
    step: FineTuneStep | None = None
    for phase in spec.phases:
        attempts = b.phase_attempts(owner, phase.name, children.jobs)
        entry = finetune_phase_entry(owner, phase.name, attempts, children, gpus)
        restarts += sum(children.jobs[a].failed for a in attempts)
        tokens += int(entry.get("tokens", 0))
        gpu_seconds += float(entry.get("gpuSeconds", 0.0))
        if step is None:
            step = finetune_phase_step(owner, spec, data, phase.name, attempts, children, settings)
            if step is not None and step.restarted:  # the next attempt runs; the failed one's results are history
                entry = {k: v for k, v in entry.items() if k in ("name", "startTime", "gpuSeconds")} | {
                    "state": "Running"
                }
        phases.append(entry)
    return FineTunePhaseWalk(phases, restarts, tokens, gpu_seconds, step)


def finetune_phase_entry(
    owner: b.Owner, phase: str, attempts: list[str], children: Children, gpus: int
) -> dict[str, Any]:
    """status.phases[] of one phase: its latest attempt (and its checkpoint selection), with the trainer's result."""
    job_name = attempts[-1] if attempts else b.phase_job_name(owner, phase)
    job = children.jobs.get(job_name)
    entry: dict[str, Any] = {"name": phase, "state": "Pending"}
    if job is None:
        return entry
    select_name = b.select_job_name(owner, phase)
    select = children.jobs.get(select_name)
    entry["state"] = finetune_phase_state(job, select)
    if job.start_time and finetune_job_started(job):
        entry["startTime"] = job.start_time
    last = select or job
    if last.finished and last.completion_time:
        entry["completionTime"] = last.completion_time
    if job.finished:
        entry["gpuSeconds"] = round(seconds_between(job.start_time, job.completion_time) * gpus, 1)
    result = {**(children.result(job_name) or {}), **((children.result(select_name) if select else None) or {})}
    return entry | finetune_train_result(result)


def finetune_job_started(job: JobState) -> bool:
    """A Job's startTime is reported once its pods ran (ready, done or failed): the Job controller sets it when it
    creates the pods, and a status patch for it while they wait to be scheduled would be one write more per job
    (docs/operator-scale.md) for a time the Running transition reports anyway."""
    return bool(job.ready or job.succeeded or job.failed or job.finished)


def finetune_phase_state(job: JobState, select: JobState | None) -> str:
    if job.failed_terminal or (select is not None and select.failed_terminal):
        return "Failed"
    if job.complete and (select is None or select.complete):
        return "Succeeded"
    if job.ready or job.succeeded:
        return "Running"
    return "Pending"


def finetune_train_result(raw: dict[str, Any]) -> dict[str, Any]:
    """What the trainer (and the checkpoint selection) reported, as status fields; what does not fit is dropped."""
    r = lenient(TrainResult, raw)
    reported = {
        "finalLoss": r.final_loss,
        "tokens": r.tokens,
        "dtype": r.dtype or None,
        "checkpoints": [c[:1024] for c in r.checkpoints[:100]] or None,
        "bestCheckpoint": r.best_checkpoint or None,
        "resumedFromStep": r.resumed_from_step or None,
    }
    return {k: v for k, v in reported.items() if v is not None}


def finetune_phase_step(
    owner: b.Owner,
    spec: FineTuneJobSpec,
    data: b.Data,
    phase: str,
    attempts: list[str],
    children: Children,
    settings: Settings,
) -> FineTuneStep | None:
    """What a phase waits for, from its latest attempt: to be created, to finish, a restart, its checkpoint
    selection; or how it failed. None when it is done."""
    job_name = attempts[-1] if attempts else b.phase_job_name(owner, phase)
    job = children.jobs.get(job_name)
    if job is None:
        return FineTuneStep(
            phase, job_name, wanted=finetune_attempt_children(owner, spec, data, phase, 0, children, settings)
        )
    if job.failed_terminal:
        return finetune_failed_phase(owner, spec, data, phase, attempts, children, settings)
    if not job.complete:
        return FineTuneStep(phase, job_name)
    if spec.evaluation.checkpoint_selection == "best":
        return finetune_selection_step(owner, spec, data, phase, children, settings)
    return None


def finetune_attempt_children(
    owner: b.Owner,
    spec: FineTuneJobSpec,
    data: b.Data,
    phase: str,
    attempt: int,
    children: Children,
    settings: Settings,
) -> list[Manifest]:
    """An attempt's Service (multi-node: it names the pods) and Job, those that do not exist."""
    return [
        *common.missing(b.build_phase_service(owner, spec, phase, settings, attempt), children.services),
        *common.missing(b.build_phase_job(owner, spec, phase, settings, attempt, data=data), children.jobs),
    ]


def finetune_failed_phase(
    owner: b.Owner,
    spec: FineTuneJobSpec,
    data: b.Data,
    phase: str,
    attempts: list[str],
    children: Children,
    settings: Settings,
) -> FineTuneStep:
    """A phase whose latest attempt failed: the next attempt as a whole group (multi-node, when a restart can mend
    it; it resumes from the phase's last saved state), else the failure."""
    job = children.jobs[attempts[-1]]
    retry = finetune_gang_restart(spec, [children.jobs[a] for a in attempts]) if spec.resources.nodes > 1 else None
    if retry is None or isinstance(retry, tuple):
        return FineTuneStep(phase, failure=retry or common.job_failure(job))
    n = len(attempts)
    return FineTuneStep(
        phase,
        b.phase_job_name(owner, phase, n),
        wanted=finetune_attempt_children(owner, spec, data, phase, n, children, settings),
        restarted=True,
    )


def finetune_selection_step(
    owner: b.Owner, spec: FineTuneJobSpec, data: b.Data, phase: str, children: Children, settings: Settings
) -> FineTuneStep | None:
    """checkpointSelection best: the phase is done once its select Job has picked the best checkpoint."""
    select = children.jobs.get(b.select_job_name(owner, phase))
    if select is None:
        return FineTuneStep(
            phase, wanted=common.missing(b.build_select_job(owner, spec, phase, settings, data=data), children.jobs)
        )
    if select.failed_terminal:
        return FineTuneStep(phase, failure=common.job_failure(select))
    if not select.complete:
        return FineTuneStep(phase)
    return None


def finetune_gang_verdict(job: JobState) -> str:
    """Why a multi-node phase attempt failed, from its Job's failure (see builders.finetune.build_phase_job):
    user (exit 2: fix the spec), preempted (saved its state, or disrupted: not counted), deadline, or crash."""
    if job.failure_reason == "DeadlineExceeded":
        return "deadline"
    if job.failure_reason == "PodFailurePolicy":
        rule = re.search(r"rule at index (\d+)", job.failure_message)
        index = int(rule.group(1)) if rule else b.GANG_RULE_USER_ERROR
        return "user" if index == b.GANG_RULE_USER_ERROR else "preempted"
    return "crash"


def finetune_gang_restart(spec: FineTuneJobSpec, attempts: list[JobState]) -> bool | tuple[str, str] | None:
    """The failed last attempt of a multi-node phase: True to start the next attempt (a preemption, or a crash
    within runPolicy.backoffLimit), a (reason, message) failure when the crashes are spent, None for a failure
    that no restart can mend (user error, deadline)."""
    verdict = finetune_gang_verdict(attempts[-1])
    if verdict in ("user", "deadline"):
        return None
    crashes = sum(1 for j in attempts if j.failed_terminal and finetune_gang_verdict(j) == "crash")
    limit = spec.run_policy.backoff_limit
    if verdict == "preempted" or crashes <= limit:
        return True
    return Reason.BACKOFF_LIMIT_EXCEEDED, (
        f"phase failed {crashes} times as a group of {spec.resources.nodes} pods (runPolicy.backoffLimit {limit}); "
        f"last: {attempts[-1].failure_message or attempts[-1].failure_reason}"
    )[:1000]


# --- 3. the evaluation ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FineTuneEvaluation:
    """The evaluation after the last phase."""

    state: Literal["off", "running", "failed", "done"]
    job: JobState | None = None
    wanted: list[Manifest] = field(default_factory=list)
    #: outputs.evaluation once it is done
    report: dict[str, Any] | None = None
    #: what the evaluation reported, typed (the gate reads it)
    result: EvaluateResult | None = None


def finetune_evaluation(
    owner: b.Owner, spec: FineTuneJobSpec, data: b.Data, children: Children, settings: Settings
) -> FineTuneEvaluation:
    if not spec.evaluation.enabled:
        return FineTuneEvaluation("off")
    name = b.evaluate_job_name(owner)
    step = common.one_job(children.jobs, name, lambda: b.build_evaluate_job(owner, spec, settings, data=data))
    if step.state != "done":
        return FineTuneEvaluation(step.state, step.job, step.wanted)
    result = lenient(EvaluateResult, children.result(name))
    return FineTuneEvaluation("done", step.job, report=finetune_evaluation_report(result), result=result)


def finetune_evaluation_report(report: EvaluateResult) -> dict[str, Any]:
    """status.outputs.evaluation: the report's path, the aggregate scores, forgetting and the headline measures."""
    names = (
        ("report", "report"),
        ("base_score", "baseScore"),
        ("tuned_score", "tunedScore"),
        ("forgetting_delta", "forgettingDelta"),
    )
    out = {key: getattr(report, attr) for attr, key in names if getattr(report, attr) is not None}
    measures = report.measures
    for attr, key in (
        ("held_out_loss", "heldOutLoss"),
        ("mcq_accuracy", "mcqAccuracy"),
        ("judge_rating", "judgeRating"),
    ):
        pair: MeasurePair | None = getattr(measures, attr) if measures is not None else None
        if pair is not None and (pair.base is not None or pair.tuned is not None):
            out[key] = {k: v for k, v in (("base", pair.base), ("tuned", pair.tuned)) if v is not None}
    return out


@dataclass(frozen=True)
class FineTuneGateVerdict:
    promoted: bool
    reason: str
    message: str


def _gain(pair: MeasurePair | None, lower_is_better: bool = False) -> tuple[float, float, float] | None:
    if pair is None or pair.base is None or pair.tuned is None:
        return None
    gain = pair.base - pair.tuned if lower_is_better else pair.tuned - pair.base
    return pair.base, pair.tuned, gain


def finetune_gate(gate: Gate | None, result: EvaluateResult | None) -> FineTuneGateVerdict:
    """Promote the tuned model or not: each threshold of ``gate`` against what the evaluation measured, every number
    in the message. A threshold on a measure that was not measured fails (never a pass on a missing number)."""
    if result is None:
        return FineTuneGateVerdict(True, Reason.NO_GATE, "evaluation off: promoted without a gate")
    if gate is None:
        return FineTuneGateVerdict(True, Reason.NO_GATE, "no spec.evaluation.gate: every evaluated model is promoted")
    m = result.measures
    checks: list[tuple[str, tuple[float, float, float] | None, str, float]] = []
    if gate.min_held_out_loss_improvement is not None:
        pair = _gain(m.held_out_loss if m else None, lower_is_better=True)
        checks.append(("held-out loss", pair, "improvement", gate.min_held_out_loss_improvement))
    if gate.min_mcq_accuracy_gain is not None:
        checks.append(("MCQ accuracy", _gain(m.mcq_accuracy if m else None), "gain", gate.min_mcq_accuracy_gain))
    if gate.min_judge_rating_gain is not None:
        checks.append(("judge rating", _gain(m.judge_rating if m else None), "gain", gate.min_judge_rating_gain))
    if gate.min_score_gain is not None:
        score = None
        if result.base_score is not None and result.tuned_score is not None:
            score = (result.base_score, result.tuned_score, result.tuned_score - result.base_score)
        checks.append(("aggregate score", score, "gain", gate.min_score_gain))
    said: list[str] = []
    passed = True
    for label, values, kind, threshold in checks:
        if values is None:
            passed = False
            said.append(f"{label}: not measured (needs {kind} >= {threshold:g}): failed")
            continue
        base, tuned, gain = values
        ok = gain >= threshold
        passed &= ok
        said.append(f"{label} {base:.4g} -> {tuned:.4g} ({kind} {gain:+.4g}, needs >= {threshold:g}): "
                    f"{'passed' if ok else 'failed'}")  # fmt: skip
    if gate.max_forgetting is not None:
        if result.forgetting_delta is None:
            passed = False
            said.append(f"forgetting: not measured (needs <= {gate.max_forgetting:g}): failed")
        else:
            ok = result.forgetting_delta <= gate.max_forgetting
            passed &= ok
            said.append(f"forgetting {result.forgetting_delta:+.4g} (needs <= {gate.max_forgetting:g}): "
                        f"{'passed' if ok else 'failed'}")  # fmt: skip
    if not said:
        return FineTuneGateVerdict(True, Reason.GATE_PASSED, "the gate sets no threshold: promoted")
    verdict = "promoted" if passed else "not promoted"
    return FineTuneGateVerdict(passed, Reason.GATE_PASSED if passed else Reason.GATE_FAILED,
                               f"{verdict}: " + "; ".join(said))  # fmt: skip


# --- 4. the status ----------------------------------------------------------------------------------------------


def finetune_status(
    *,
    owner: b.Owner,
    spec: FineTuneJobSpec,
    status: dict[str, Any],
    children: Children,
    walk: FineTunePhaseWalk,
    evaluation: FineTuneEvaluation | None,
    cond: Conditions,
    settings: Settings,
) -> Outcome:
    """What the phase walk and the evaluation come to: Failed, Suspended, Pending or Running (training), then
    Evaluating, Failed or Succeeded. The data is ready (the gate passed)."""
    data_ready = cond(ConditionType.DATA_READY, True, Reason.DATA_READY, "")
    fields = finetune_walk_fields(children, walk)
    step = walk.step
    if step is not None and step.failure is not None:
        done = common.last_completion(children.jobs.values())
        fields |= {"completionTime": done} if done else {}
        failed = common.failed_conditions(cond, *step.failure)
        return Outcome(Phase.FAILED, [data_ready, *failed], fields, step.wanted)
    if step is not None and spec.run_policy.suspend:
        suspended = common.suspended_conditions(cond, running_message=common.SUSPEND_MESSAGE)
        return Outcome(Phase.SUSPENDED, [data_ready, *suspended], fields, step.wanted)
    if step is not None:
        training = finetune_training(owner, children, walk, step, cond)
        not_suspended = cond(ConditionType.SUSPENDED, False, Reason.TRAINING, "")
        return Outcome(training.phase, [data_ready, not_suspended, *training.conditions], fields, step.wanted)
    assert evaluation is not None
    end = finetune_evaluated(owner, spec, status, children, evaluation, cond, settings)
    not_suspended = cond(ConditionType.SUSPENDED, False, Reason.SUCCEEDED, "")
    wanted = [*evaluation.wanted, *end.wanted]
    return Outcome(end.phase, [data_ready, not_suspended, *end.conditions], fields | end.fields, wanted)


def finetune_walk_fields(children: Children, walk: FineTunePhaseWalk) -> dict[str, Any]:
    fields: dict[str, Any] = {"phases": walk.phases, "restarts": walk.restarts}
    starts = [j.start_time for j in children.jobs.values() if j.start_time and finetune_job_started(j)]
    if starts:
        fields["startTime"] = min(starts)
    if walk.step is not None:
        fields["currentPhase"] = walk.step.phase
    fields["usage"] = {"gpuSeconds": round(walk.gpu_seconds, 1), "tokens": walk.tokens}
    return fields


def finetune_training(
    owner: b.Owner, children: Children, walk: FineTunePhaseWalk, step: FineTuneStep, cond: Conditions
) -> Outcome:
    """A phase is training: Running once anything ran, else Pending; the Running condition says how its pods are."""
    phase = step.phase
    running = any(j.running and (j.ready or j.succeeded) for j in children.jobs.values())
    problem = children.problem(step.job or b.phase_job_name(owner, phase), b.select_job_name(owner, phase))
    conditions = [
        common.running_condition(
            cond,
            problem=problem,
            running=running,
            reason=Reason.TRAINING,
            message=f"phase {phase}",
            starting=f"phase {phase}: waiting for its pods to start",
            problem_prefix=f"phase {phase}: ",
        ),
        cond(ConditionType.READY, False, Reason.TRAINING, f"training phase {phase}"),
    ]
    # between two phases (the next Job created, its pods not yet up) the job is still Running, not Pending
    # (or between two attempts of a phase restarted as a group: anything that ran before counts)
    started = running or walk.restarts > 0 or any(p.get("state") in ("Succeeded", "Running") for p in walk.phases)
    return Outcome(Phase.RUNNING if started else Phase.PENDING, conditions)


def finetune_evaluated(
    owner: b.Owner,
    spec: FineTuneJobSpec,
    status: dict[str, Any],
    children: Children,
    evaluation: FineTuneEvaluation,
    cond: Conditions,
    settings: Settings,
) -> Outcome:
    """Every phase is done: Evaluating while the evaluation runs, Failed when it failed; then, for a promoted model
    with spec.output.uri, Exporting while it is exported (Failed if that fails); else Succeeded."""
    if evaluation.state == "running":
        return Outcome(
            Phase.EVALUATING,
            [
                cond(ConditionType.RUNNING, True, Reason.EVALUATING, "evaluating base vs tuned"),
                cond(ConditionType.READY, False, Reason.EVALUATING, ""),
            ],
        )
    if evaluation.state == "failed":
        assert evaluation.job is not None
        failed = common.failed_conditions(cond, *common.job_failure(evaluation.job))
        return Outcome(Phase.FAILED, failed, {"completionTime": evaluation.job.completion_time})
    model_out = b.output_dir(owner, spec)
    outputs: dict[str, Any] = {"model": model_out}
    if evaluation.report is not None:
        outputs["evaluation"] = evaluation.report
    verdict = finetune_gate(spec.evaluation.gate, evaluation.result)
    # Promoted first: the Succeeded Event carries the gate's verdict
    promoted = cond(ConditionType.PROMOTED, verdict.promoted, verdict.reason, verdict.message)
    ready = f"model at {model_out}"
    if spec.output.uri and verdict.promoted:
        export = finetune_export(owner, spec, children, settings)
        unfinished = finetune_export_outcome(spec, export, promoted, outputs, cond)
        if unfinished is not None:
            return unfinished
        outputs["exported"] = export.exported
        ready += f", exported to {export.exported.get('uri', spec.output.uri)}"
    elif spec.output.uri:
        ready += f"; not exported to {spec.output.uri}: not promoted"
    served = srv.serving(owner, spec, children, promoted=verdict.promoted, cond=cond, settings=settings)
    if served.outputs is not None:
        outputs["serving"] = served.outputs
    done = common.last_completion(children.jobs.values())
    serving_condition = [served.condition] if served.condition is not None else []
    return Outcome(
        Phase.SUCCEEDED,
        [promoted, *serving_condition, *common.succeeded_conditions(cond, ready + served.ready_message)],
        {"outputs": outputs, **common.done_progress(status), **({"completionTime": done} if done else {})},
        served.create,
    )


def finetune_served(
    owner: b.Owner,
    spec: FineTuneJobSpec,
    generation: int | None,
    status: dict[str, Any],
    children: Children,
    settings: Settings,
) -> Plan:
    """A finished job: nothing for a failed one; for a succeeded one, its serving (spec.serve, reconcile/serving.py)
    as the spec now asks — the Promoted condition decides whether the model may be served."""
    if status.get("phase") != Phase.SUCCEEDED:
        return Plan()
    conditions = status.get("conditions") or []
    promoted = any(c.get("type") == ConditionType.PROMOTED and c.get("status") == "True" for c in conditions)
    cond = Conditions(generation, conditions)
    served = srv.serving(owner, spec, children, promoted=promoted, cond=cond, settings=settings)
    reported = any(c.get("type") == ConditionType.SERVING for c in conditions)
    if spec.serve is None and not reported:
        return Plan(delete=served.delete)  # never served, or cleaned up already: the status stays as it is
    return Plan(
        create=served.create,
        patch=served.patch,
        delete=served.delete,
        status=srv.terminal_status(status, generation, served),
    )


def finetune_export_outcome(
    spec: FineTuneJobSpec, export: FineTuneExport, promoted: Condition, outputs: dict[str, Any], cond: Conditions
) -> Outcome | None:
    """Exporting while the export Job runs, Failed with its reason when it failed; None once it is done."""
    if export.state == "running":
        running = cond(ConditionType.RUNNING, True, Reason.EXPORTING, f"exporting the model to {spec.output.uri}")
        not_ready = cond(ConditionType.READY, False, Reason.EXPORTING, "")
        return Outcome(Phase.EXPORTING, [promoted, running, not_ready], {"outputs": outputs}, export.wanted)
    if export.state == "failed":
        assert export.job is not None
        failed = common.failed_conditions(cond, *common.job_failure(export.job))
        fields = {"outputs": outputs, "completionTime": export.job.completion_time}
        return Outcome(Phase.FAILED, [promoted, *failed], fields)
    return None


@dataclass(frozen=True)
class FineTuneExport:
    state: Literal["running", "failed", "done"]
    job: JobState | None = None
    wanted: list[Manifest] = field(default_factory=list)
    exported: dict[str, Any] = field(default_factory=dict)


def finetune_export(owner: b.Owner, spec: FineTuneJobSpec, children: Children, settings: Settings) -> FineTuneExport:
    """The export of a promoted model to spec.output.uri: its Job, and where the model landed once it is done."""
    name = b.export_job_name(owner)
    step = common.one_job(children.jobs, name, lambda: b.build_export_job(owner, spec, settings))
    if step.state != "done":
        return FineTuneExport(step.state, step.job, step.wanted)
    result = lenient(ExportResult, children.result(name))
    exported = {k: v for k, v in result.model_dump().items() if v is not None}
    return FineTuneExport("done", step.job, exported={"uri": spec.output.uri, **exported})
