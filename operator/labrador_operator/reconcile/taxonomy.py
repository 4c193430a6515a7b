"""Deciding a Taxonomy: which sync Job should exist, and the status its latest finished sync reported. Pure.

``plan``: the sync Job of this generation and refresh window (``taxonomy_sync_job``), and the status from this
generation's syncs (``taxonomy_syncs``): ``taxonomy_syncing`` until one has finished, then ``taxonomy_synced``.
"""

from __future__ import annotations

from typing import Any

from labrador_operator.api.taxonomy import ConditionType, Phase, Reason, TaxonomySpec
from labrador_operator.builders import taxonomy as b
from labrador_operator.reconcile.common import Conditions, Manifest, Outcome
from labrador_operator.reconcile.observe import Children, JobState
from labrador_operator.reconcile.plan import Plan
from labrador_operator.reconcile.results import SyncResult, lenient
from labrador_operator.settings import Settings

MAX_LEAVES = 1000
MAX_ERRORS = 100


def taxonomy_sync_window(job: JobState) -> tuple[int, int]:
    """(generation, window) encoded in a sync Job's name, for ordering."""
    gen, win = 0, 0
    for part in job.name.split("-"):
        if part[:1] == "g" and part[1:].isdigit():
            gen = int(part[1:])
        elif part[:1] == "w" and part[1:].isdigit():
            win = int(part[1:])
    return gen, win


def _from_result(raw: dict[str, Any] | SyncResult, snapshot: str, claim: str) -> dict[str, Any]:
    """The status fields of a sync's result (the contract tests feed it the trainer's own summaries)."""
    result = raw if isinstance(raw, SyncResult) else lenient(SyncResult, raw)
    leaves = [
        {"path": leaf.path, "type": leaf.type, "seedExamples": leaf.seed_examples}
        for leaf in result.leaves[:MAX_LEAVES]
    ]
    errors = [{"path": e.path, "line": e.line, "message": e.message[:4096]} for e in result.errors[:MAX_ERRORS]]
    counts = result.counts or {}
    total = {k: max(int(counts.get(k, 0)), 0) for k in ("knowledge", "freeform_skill", "grounded_skill")}
    if not counts:
        for leaf in leaves:
            total[leaf["type"]] += 1
    out: dict[str, Any] = {
        "counts": {
            "knowledge": total["knowledge"],
            "freeformSkill": total["freeform_skill"],
            "groundedSkill": total["grounded_skill"],
            "total": sum(total.values()),
        },
        "leaves": leaves,
        "errors": errors,
        "errorCount": result.error_count if result.error_count is not None else len(errors),
        "snapshot": {"claimName": claim, "path": snapshot},
    }
    if result.revision:
        out["revision"] = result.revision[:64]
    return out


def plan(
    *,
    owner: b.Owner,
    spec: TaxonomySpec,
    generation: int,
    status: dict[str, Any] | None,
    children: Children,
    now_epoch: float,
    settings: Settings,
    pinned: tuple[str, ...] = (),
) -> Plan:
    """``pinned``: snapshot paths running SyntheticDataJobs use (a new sync prunes older snapshots but these)."""
    status = status or {}
    cond = Conditions(generation, status.get("conditions"))
    syncs = taxonomy_syncs(children, generation)
    finished = [j for j in syncs if j.finished]
    outcome = taxonomy_synced(owner, spec, children, finished[-1], cond) if finished else taxonomy_syncing(syncs, cond)
    return Plan(
        create=taxonomy_sync_job(owner, spec, generation, children, now_epoch, settings, pinned),
        status=outcome.status(generation),
    )


def taxonomy_sync_job(
    owner: b.Owner,
    spec: TaxonomySpec,
    generation: int,
    children: Children,
    now_epoch: float,
    settings: Settings,
    pinned: tuple[str, ...],
) -> list[Manifest]:
    """The sync Job of this generation and refresh window, when it does not exist yet (refreshInterval: a new
    window, a new sync)."""
    window = b.sync_window(spec, now_epoch)
    if b.sync_job_name(owner, generation, window) in children.jobs:
        return []
    return [b.build_sync_job(owner, spec, generation, window, settings, keep=pinned)]


def taxonomy_syncs(children: Children, generation: int) -> list[JobState]:
    """This generation's sync Jobs, oldest window first (those of earlier generations say nothing of this spec)."""
    mine = (j for j in children.jobs.values() if j.role == "sync" and taxonomy_sync_window(j)[0] == generation)
    return sorted(mine, key=taxonomy_sync_window)


def taxonomy_syncing(syncs: list[JobState], cond: Conditions) -> Outcome:
    """No sync of this generation has finished: Syncing once one runs, else Pending."""
    phase = Phase.SYNCING if any(j.ready or j.active for j in syncs) else Phase.PENDING
    return Outcome(
        phase,
        [
            cond(ConditionType.READY, False, Reason.SYNCING, "first sync of this generation is running"),
            cond(ConditionType.VALID, "Unknown", Reason.SYNCING, "not validated yet"),
        ],
    )


def taxonomy_synced(
    owner: b.Owner, spec: TaxonomySpec, children: Children, latest: JobState, cond: Conditions
) -> Outcome:
    """The latest finished sync decides: Ready (it succeeded), Invalid (it found errors in the taxonomy) or Failed
    (it could not read the source, or crashed), with what it reported."""
    result = lenient(SyncResult, children.result(latest.name))
    fields = _from_result(result, b.snapshot_dir(owner, latest.name), spec.workspace.claim_name)
    if latest.completion_time:
        fields["lastSyncTime"] = latest.completion_time
    if latest.complete:
        ready = f"revision {fields.get('revision', '?')}"
        conditions = [
            cond(ConditionType.VALID, True, Reason.SYNCED, ""),
            cond(ConditionType.READY, True, Reason.SYNCED, ready),
        ]
        return Outcome(Phase.READY, conditions, fields)
    if result.valid is False:
        msg = taxonomy_validation_message(fields)
        reason = Reason.VALIDATION_FAILED
        conditions = [cond(ConditionType.VALID, False, reason, msg), cond(ConditionType.READY, False, reason, msg)]
        return Outcome(Phase.INVALID, conditions, fields)
    msg = (result.error or result.message or latest.failure_message or "the sync Job failed")[:4096]
    reason = Reason.SOURCE_UNREACHABLE if result.error else Reason.SYNC_FAILED
    conditions = [cond(ConditionType.VALID, "Unknown", reason, msg), cond(ConditionType.READY, False, reason, msg)]
    return Outcome(Phase.FAILED, conditions, fields)


def taxonomy_validation_message(fields: dict[str, Any]) -> str:
    """``<n> validation error(s): <file>:<line>: <message>`` of the first error."""
    first = fields["errors"][0] if fields["errors"] else None
    where = f": {first['path']}:{first['line']}: {first['message']}" if first else ""
    return f"{fields['errorCount']} validation error(s){where}"
