"""Deciding a Taxonomy: which sync Job should exist, and the status its latest finished sync reported. Pure."""

from __future__ import annotations

from typing import Any

from labrador_operator.api.taxonomy import ConditionType, Phase, Reason, TaxonomySpec
from labrador_operator.builders import taxonomy as b
from labrador_operator.reconcile.observe import Children, JobState
from labrador_operator.reconcile.plan import Plan, condition
from labrador_operator.reconcile.results import SyncResult, lenient
from labrador_operator.settings import Settings

MAX_LEAVES = 1000
MAX_ERRORS = 100


def _window_of(job: JobState) -> tuple[int, int]:
    """(generation, window) encoded in a sync Job's name, for ordering."""
    gen, win = 0, 0
    for part in job.name.split("-"):
        if part[:1] == "g" and part[1:].isdigit():
            gen = int(part[1:])
        elif part[:1] == "w" and part[1:].isdigit():
            win = int(part[1:])
    return gen, win


def _from_result(raw: dict[str, Any] | SyncResult, snapshot: str, claim: str) -> dict[str, Any]:
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
    prev = status.get("conditions")
    out = Plan()
    window = b.sync_window(spec, now_epoch)
    wanted = b.sync_job_name(owner, generation, window)
    if wanted not in children.jobs:
        out.create.append(b.build_sync_job(owner, spec, generation, window, settings, keep=pinned))

    syncs = sorted(
        (j for j in children.jobs.values() if j.role == "sync" and _window_of(j)[0] == generation), key=_window_of
    )
    finished = [j for j in syncs if j.finished]
    latest = finished[-1] if finished else None
    conds: list[dict[str, Any]] = []

    def cond(t: str, s: bool | str, reason: str, msg: str = "") -> None:
        conds.append(condition(t, s, reason, msg, generation, prev))

    fields: dict[str, Any] = {"observedGeneration": generation}
    if latest is None:
        cond(ConditionType.READY, False, Reason.SYNCING, "first sync of this generation is running")
        cond(ConditionType.VALID, "Unknown", Reason.SYNCING, "not validated yet")
        phase = Phase.SYNCING if any(j.ready or j.active for j in syncs) else Phase.PENDING
        out.status = {"phase": phase.value, "conditions": conds, **fields}
        return out

    result = lenient(SyncResult, children.result(latest.name))
    fields.update(_from_result(result, b.snapshot_dir(owner, latest.name), spec.workspace.claim_name))
    if latest.completion_time:
        fields["lastSyncTime"] = latest.completion_time
    if latest.complete:
        cond(ConditionType.VALID, True, Reason.SYNCED, "")
        cond(ConditionType.READY, True, Reason.SYNCED, f"revision {fields.get('revision', '?')}")
        phase = Phase.READY
    elif result.valid is False:
        n = fields["errorCount"]
        first = fields["errors"][0] if fields["errors"] else None
        where = f": {first['path']}:{first['line']}: {first['message']}" if first else ""
        msg = f"{n} validation error(s){where}"
        cond(ConditionType.VALID, False, Reason.VALIDATION_FAILED, msg)
        cond(ConditionType.READY, False, Reason.VALIDATION_FAILED, msg)
        phase = Phase.INVALID
    else:
        msg = (result.error or result.message or latest.failure_message or "the sync Job failed")[:4096]
        reason = Reason.SOURCE_UNREACHABLE if result.error else Reason.SYNC_FAILED
        cond(ConditionType.VALID, "Unknown", reason, msg)
        cond(ConditionType.READY, False, reason, msg)
        phase = Phase.FAILED
    out.status = {"phase": phase.value, "conditions": conds, **fields}
    return out
