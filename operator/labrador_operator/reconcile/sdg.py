"""Deciding a SyntheticDataJob: wait for its Taxonomy, pin the revision, generate in shards, mix. Pure."""

from __future__ import annotations

from typing import Any

from labrador_operator.api.sdg import ConditionType, Phase, Reason, SyntheticDataJobSpec
from labrador_operator.builders import sdg as b
from labrador_operator.reconcile.common import done_progress, finished, job_failure
from labrador_operator.reconcile.observe import Children, seconds_between
from labrador_operator.reconcile.plan import Plan, condition
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
    if finished(status, generation):
        return Plan()  # terminal: children may be gone (ttlSecondsAfterFinished); never start over
    prev = status.get("conditions")
    out = Plan()
    conds: list[dict[str, Any]] = []

    def cond(t: str, s: bool | str, reason: str, msg: str = "") -> None:
        conds.append(condition(t, s, reason, msg, generation, prev))

    def finish(phase: Phase, **fields: Any) -> Plan:
        out.status = {"phase": phase.value, "observedGeneration": generation, "conditions": conds, **fields}
        return out

    # 1. the taxonomy: pinned once the generation started, else it must be Ready now
    pinned = status.get("taxonomyRevision")
    snap: b.Snapshot | None = None
    tax_status = (taxonomy or {}).get("status") or {}
    if pinned and children.config_maps & {b.config_map_name(owner)}:
        snap = b.Snapshot(revision=pinned, path=((tax_status.get("snapshot") or {}).get("path") or ""))
        cond(ConditionType.TAXONOMY_READY, True, Reason.TAXONOMY_PINNED, f"revision {pinned}")
    elif taxonomy is None:
        msg = f"Taxonomy {spec.taxonomy_ref.name} does not exist in this namespace"
        cond(ConditionType.TAXONOMY_READY, False, Reason.TAXONOMY_NOT_FOUND, msg)
        cond(ConditionType.READY, False, Reason.TAXONOMY_NOT_FOUND, msg)
        return finish(Phase.WAITING)
    elif tax_status.get("phase") == "Invalid":
        msg = f"Taxonomy {spec.taxonomy_ref.name} is invalid ({tax_status.get('errorCount', '?')} errors)"
        cond(ConditionType.TAXONOMY_READY, False, Reason.TAXONOMY_INVALID, msg)
        cond(ConditionType.READY, False, Reason.TAXONOMY_INVALID, msg)
        return finish(Phase.WAITING)
    elif tax_status.get("phase") != "Ready" or not tax_status.get("snapshot"):
        msg = f"waiting for Taxonomy {spec.taxonomy_ref.name} to be Ready (phase {tax_status.get('phase', 'Pending')})"
        cond(ConditionType.TAXONOMY_READY, False, Reason.WAITING_FOR_TAXONOMY, msg)
        cond(ConditionType.READY, False, Reason.WAITING_FOR_TAXONOMY, msg)
        return finish(Phase.WAITING)
    else:
        snap = b.Snapshot(revision=str(tax_status.get("revision", "")), path=tax_status["snapshot"]["path"])
        cond(ConditionType.TAXONOMY_READY, True, Reason.TAXONOMY_PINNED, f"revision {snap.revision}")

    suspend = spec.run_policy.suspend
    fields: dict[str, Any] = {"taxonomyRevision": pinned or snap.revision}
    if status.get("taxonomySnapshot") or snap.path:
        fields["taxonomySnapshot"] = status.get("taxonomySnapshot") or snap.path
    for job in children.jobs.values():
        if job.finished:
            continue
        if suspend and not job.suspend_requested:
            out.patch.append(("Job", job.name, {"spec": {"suspend": True}}))
        elif not suspend and job.suspend_requested and not spec.run_policy.queue_name:
            out.patch.append(("Job", job.name, {"spec": {"suspend": False}}))

    def ensure(manifest: dict[str, Any], existing: set[str] | dict[str, Any]) -> None:
        if manifest["metadata"]["name"] not in existing and not suspend:
            out.create.append(manifest)

    if b.config_map_name(owner) not in children.config_maps:
        ensure(b.build_config_map(owner, spec, snap, settings), children.config_maps)
    gen = children.jobs.get(b.generate_job_name(owner))
    mix = children.jobs.get(b.mix_job_name(owner))
    n = spec.parallelism
    gpus = spec.resources.gpus if spec.teacher.model is not None else 0
    if gen is not None:
        fields["shards"] = {"total": n, "active": gen.active, "succeeded": gen.succeeded, "failed": gen.failed}
        if gen.start_time:
            fields["startTime"] = gen.start_time
    gpu_seconds = seconds_between(gen.start_time, gen.completion_time) * n * gpus if gen and gen.finished else 0.0
    shard_results = [lenient(GenerateResult, p.result) for p in children.pods.values() if gen and p.job == gen.name]
    tokens = sum(r.output_tokens for r in shard_results)
    fields["usage"] = {"gpuSeconds": round(gpu_seconds, 1), "tokens": tokens}
    dtypes = sorted({r.dtype for r in shard_results if r.dtype})
    if dtypes:
        fields["teacherDtype"] = "/".join(dtypes)[:16]

    failed = next((j for j in (gen, mix) if j is not None and j.failed_terminal), None)
    if failed is not None:
        reason, message = job_failure(failed)
        cond(ConditionType.RUNNING, False, reason, message)
        cond(ConditionType.READY, False, reason, message)
        cond(ConditionType.FAILED, True, reason, message)
        return finish(Phase.FAILED, completionTime=failed.completion_time, **fields)

    if suspend and not (mix and mix.complete):
        cond(ConditionType.SUSPENDED, True, Reason.SUSPENDED, "runPolicy.suspend is true")
        cond(ConditionType.RUNNING, False, Reason.SUSPENDED, "")
        cond(ConditionType.READY, False, Reason.SUSPENDED, "")
        return finish(Phase.SUSPENDED, **fields)
    cond(ConditionType.SUSPENDED, False, Reason.GENERATING, "")

    if gen is None or not gen.complete:
        if gen is None:
            ensure(b.build_generate_job(owner, spec, settings), children.jobs)
        running = gen is not None and (gen.ready > 0 or gen.succeeded > 0)
        problem = children.problem(gen.name) if gen is not None else None
        if problem is not None:  # the pods' own words: the user (or the platform) has to act
            cond(ConditionType.RUNNING, False, problem[0], problem[1])
        elif running:
            cond(ConditionType.RUNNING, True, Reason.GENERATING, f"{n} shard(s)")
        else:
            cond(ConditionType.RUNNING, False, Reason.STARTING, f"{n} shard(s): waiting for the pods to start")
        cond(ConditionType.READY, False, Reason.GENERATING, "")
        return finish(Phase.RUNNING if running else Phase.PENDING, **fields)

    if mix is None or not mix.complete:
        if mix is None:
            ensure(b.build_mix_job(owner, spec, settings), children.jobs)
        cond(ConditionType.RUNNING, True, Reason.MIXING, "mixing the generated samples")
        cond(ConditionType.READY, False, Reason.MIXING, "")
        return finish(Phase.MIXING, **fields)

    counts = lenient(MixResult, children.result(mix.name)).counts.model_dump(exclude_none=True)
    outputs: dict[str, Any] = dict(b.outputs(owner))
    if counts:
        outputs["counts"] = counts
    cond(ConditionType.RUNNING, False, Reason.SUCCEEDED, "")
    cond(ConditionType.READY, True, Reason.SUCCEEDED, f"data in {b.out_dir(owner)}")
    cond(ConditionType.FAILED, False, Reason.SUCCEEDED, "")
    progress = done_progress(status)
    return finish(Phase.SUCCEEDED, outputs=outputs, completionTime=mix.completion_time, **progress, **fields)
