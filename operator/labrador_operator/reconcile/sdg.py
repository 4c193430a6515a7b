"""Deciding a SyntheticDataJob: wait for its Taxonomy, pin the revision, generate in shards, mix. Pure.

``plan`` reads top to bottom: the terminal check, the Taxonomy snapshot to generate from (``sdg_snapshot``, else
``sdg_taxonomy_wait``), then the stage the generate and mix Jobs are at (``sdg_stage``: ``sdg_generating``,
``sdg_mixing``, ``sdg_succeeded``), with the status fields of the pinned Taxonomy and the shards.
"""

from __future__ import annotations

from typing import Any

from labrador_operator.api.sdg import ConditionType, Phase, Reason, SyntheticDataJobSpec
from labrador_operator.builders import sdg as b
from labrador_operator.reconcile import common
from labrador_operator.reconcile.common import Conditions, Manifest, Outcome
from labrador_operator.reconcile.observe import Children, JobState, seconds_between
from labrador_operator.reconcile.plan import Plan
from labrador_operator.reconcile.results import GenerateResult, MixResult, lenient
from labrador_operator.settings import Settings


def plan(
    *,
    owner: b.Owner,
    spec: SyntheticDataJobSpec,
    generation: int | None,
    status: dict[str, Any] | None,
    children: Children,
    taxonomy: dict[str, Any] | None,
    settings: Settings,
) -> Plan:
    status = status or {}
    if common.finished(status, generation):
        return Plan()  # terminal: children may be gone (ttlSecondsAfterFinished); never start over
    cond = Conditions(generation, status.get("conditions"))
    snap = sdg_snapshot(owner, status, children, taxonomy)
    if snap is None:
        return Plan(status=sdg_taxonomy_wait(spec, taxonomy, cond).status(generation))
    gen = children.jobs.get(b.generate_job_name(owner))
    mix = children.jobs.get(b.mix_job_name(owner))
    stage = sdg_stage(owner, spec, status, children, gen, mix, cond, settings)
    pinned = cond(ConditionType.TAXONOMY_READY, True, Reason.TAXONOMY_PINNED, f"revision {snap.revision}")
    fields = {**sdg_taxonomy_fields(status, snap), **sdg_shard_fields(spec, children, gen)}
    outcome = Outcome(stage.phase, [pinned, *stage.conditions], fields | stage.fields)
    wanted = [*sdg_config_map(owner, spec, snap, children, settings), *stage.wanted]
    return Plan(
        create=[] if spec.run_policy.suspend else wanted,  # a suspended job creates nothing
        patch=common.suspension_patches(children.jobs.values(), spec.run_policy),
        status=outcome.status(generation),
    )


# --- 1. the taxonomy --------------------------------------------------------------------------------------------


def sdg_snapshot(
    owner: b.Owner, status: dict[str, Any], children: Children, taxonomy: dict[str, Any] | None
) -> b.Snapshot | None:
    """The Taxonomy snapshot to generate from: the revision pinned once the generation started (its config written;
    later syncs, or the Taxonomy deleted, do not move it), else the Taxonomy's own once it is Ready; None while
    there is none."""
    pinned = status.get("taxonomyRevision")
    tax_status = (taxonomy or {}).get("status") or {}
    if pinned and b.config_map_name(owner) in children.config_maps:
        return b.Snapshot(revision=pinned, path=((tax_status.get("snapshot") or {}).get("path") or ""))
    if taxonomy is None or tax_status.get("phase") != "Ready" or not tax_status.get("snapshot"):
        return None
    return b.Snapshot(revision=str(tax_status.get("revision", "")), path=tax_status["snapshot"]["path"])


def sdg_taxonomy_wait(spec: SyntheticDataJobSpec, taxonomy: dict[str, Any] | None, cond: Conditions) -> Outcome:
    """Waiting: the Taxonomy does not exist, is invalid, or is not Ready yet."""
    name = spec.taxonomy_ref.name
    tax_status = (taxonomy or {}).get("status") or {}
    if taxonomy is None:
        reason, msg = Reason.TAXONOMY_NOT_FOUND, f"Taxonomy {name} does not exist in this namespace"
    elif tax_status.get("phase") == "Invalid":
        reason, msg = (
            Reason.TAXONOMY_INVALID,
            f"Taxonomy {name} is invalid ({tax_status.get('errorCount', '?')} errors)",
        )
    else:
        phase = tax_status.get("phase", "Pending")
        reason, msg = Reason.WAITING_FOR_TAXONOMY, f"waiting for Taxonomy {name} to be Ready (phase {phase})"
    return Outcome(
        Phase.WAITING,
        [cond(ConditionType.TAXONOMY_READY, False, reason, msg), cond(ConditionType.READY, False, reason, msg)],
    )


def sdg_taxonomy_fields(status: dict[str, Any], snap: b.Snapshot) -> dict[str, Any]:
    fields: dict[str, Any] = {"taxonomyRevision": status.get("taxonomyRevision") or snap.revision}
    path = status.get("taxonomySnapshot") or snap.path
    if path:
        fields["taxonomySnapshot"] = path
    return fields


def sdg_config_map(
    owner: b.Owner, spec: SyntheticDataJobSpec, snap: b.Snapshot, children: Children, settings: Settings
) -> list[Manifest]:
    """The ConfigMap of the generate and mix configs (it pins the snapshot), built only when it is missing."""
    if b.config_map_name(owner) in children.config_maps:
        return []
    return [b.build_config_map(owner, spec, snap, settings)]


# --- 2. the shards ----------------------------------------------------------------------------------------------


def sdg_shard_fields(spec: SyntheticDataJobSpec, children: Children, gen: JobState | None) -> dict[str, Any]:
    """status.shards, startTime, usage and teacherDtype, from the generate Job and what its pods reported."""
    n = spec.parallelism
    gpus = spec.resources.gpus if spec.teacher.model is not None else 0
    fields: dict[str, Any] = {}
    if gen is not None:
        fields["shards"] = {"total": n, "active": gen.active, "succeeded": gen.succeeded, "failed": gen.failed}
        if gen.start_time:
            fields["startTime"] = gen.start_time
    gpu_seconds = seconds_between(gen.start_time, gen.completion_time) * n * gpus if gen and gen.finished else 0.0
    results = [lenient(GenerateResult, p.result) for p in children.pods.values() if gen and p.job == gen.name]
    fields["usage"] = {"gpuSeconds": round(gpu_seconds, 1), "tokens": sum(r.output_tokens for r in results)}
    dtypes = sorted({r.dtype for r in results if r.dtype})
    if dtypes:
        fields["teacherDtype"] = "/".join(dtypes)[:16]
    return fields


# --- 3. the stage -----------------------------------------------------------------------------------------------


def sdg_stage(
    owner: b.Owner,
    spec: SyntheticDataJobSpec,
    status: dict[str, Any],
    children: Children,
    gen: JobState | None,
    mix: JobState | None,
    cond: Conditions,
    settings: Settings,
) -> Outcome:
    """Failed when either Job failed, Suspended until the mix is done, else generating, mixing or succeeded."""
    failed = next((j for j in (gen, mix) if j is not None and j.failed_terminal), None)
    if failed is not None:
        conditions = common.failed_conditions(cond, *common.job_failure(failed))
        return Outcome(Phase.FAILED, conditions, {"completionTime": failed.completion_time})
    if spec.run_policy.suspend and not (mix and mix.complete):
        return Outcome(Phase.SUSPENDED, common.suspended_conditions(cond, running_message=""))
    if gen is None or not gen.complete:
        step = sdg_generating(owner, spec, children, gen, cond, settings)
    elif mix is None or not mix.complete:
        step = sdg_mixing(owner, spec, mix, cond, settings)
    else:
        step = sdg_succeeded(owner, status, children, mix, cond)
    not_suspended = cond(ConditionType.SUSPENDED, False, Reason.GENERATING, "")
    return Outcome(step.phase, [not_suspended, *step.conditions], step.fields, step.wanted)


def sdg_generating(
    owner: b.Owner,
    spec: SyntheticDataJobSpec,
    children: Children,
    gen: JobState | None,
    cond: Conditions,
    settings: Settings,
) -> Outcome:
    """The generate Job (one pod per shard) to create or to finish: Running once its pods are up."""
    n = spec.parallelism
    wanted = [b.build_generate_job(owner, spec, settings)] if gen is None else []
    running = gen is not None and (gen.ready > 0 or gen.succeeded > 0)
    conditions = [
        common.running_condition(
            cond,
            problem=children.problem(gen.name) if gen is not None else None,
            running=running,
            reason=Reason.GENERATING,
            message=f"{n} shard(s)",
            starting=f"{n} shard(s): waiting for the pods to start",
        ),
        cond(ConditionType.READY, False, Reason.GENERATING, ""),
    ]
    return Outcome(Phase.RUNNING if running else Phase.PENDING, conditions, wanted=wanted)


def sdg_mixing(
    owner: b.Owner, spec: SyntheticDataJobSpec, mix: JobState | None, cond: Conditions, settings: Settings
) -> Outcome:
    """Every shard is generated: the mix Job to create or to finish."""
    wanted = [b.build_mix_job(owner, spec, settings)] if mix is None else []
    conditions = [
        cond(ConditionType.RUNNING, True, Reason.MIXING, "mixing the generated samples"),
        cond(ConditionType.READY, False, Reason.MIXING, ""),
    ]
    return Outcome(Phase.MIXING, conditions, wanted=wanted)


def sdg_succeeded(
    owner: b.Owner, status: dict[str, Any], children: Children, mix: JobState, cond: Conditions
) -> Outcome:
    """The data sets are written: their paths, and the mix's counts."""
    counts = lenient(MixResult, children.result(mix.name)).counts.model_dump(exclude_none=True)
    outputs: dict[str, Any] = dict(b.outputs(owner))
    if counts:
        outputs["counts"] = counts
    fields = {"outputs": outputs, "completionTime": mix.completion_time, **common.done_progress(status)}
    return Outcome(Phase.SUCCEEDED, common.succeeded_conditions(cond, f"data in {b.out_dir(owner)}"), fields)
