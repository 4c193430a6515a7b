"""The Taxonomy decision (reconcile.taxonomy.plan) as a table: spec + status + observed sync Jobs and their results
+ the clock in, phase + conditions + the sync Job to create out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from labrador_operator.api.taxonomy import TaxonomySpec
from labrador_operator.builders import taxonomy as b
from labrador_operator.reconcile import taxonomy as decide
from labrador_operator.reconcile.observe import Children, JobState, PodState
from labrador_operator.reconcile.plan import Plan
from labrador_operator.settings import Settings

OWNER = b.Owner("ns", "tax", "uid")
SETTINGS = Settings()
GIT = {"source": {"git": {"url": "https://example.com/taxonomy.git"}}}
REFRESH = {**GIT, "refreshInterval": "10m"}
NOW = 1_800_000_000.0  # window 3_000_000 of 600 s
W = int(NOW // 600)
T1 = "2026-01-01T00:01:00Z"

LEAVES = [
    {"path": "knowledge/science/physics", "type": "knowledge", "seed_examples": 5},
    {"path": "compositional_skills/writing/poems", "type": "freeform_skill", "seed_examples": 3},
    {"path": "compositional_skills/extraction/table", "type": "grounded_skill", "seed_examples": 5},
    {"path": "compositional_skills/writing/haiku", "type": "freeform_skill", "seed_examples": 4},
]
ERRORS = [
    {"path": "compositional_skills/writing/poems/qna.yaml", "line": 7, "message": "seed_examples: need at least 5"},
    {"path": "knowledge/science/physics/qna.yaml", "line": 0, "message": "document: missing"},
]
LEAF_STATUS = [{"path": x["path"], "type": x["type"], "seedExamples": x["seed_examples"]} for x in LEAVES]


def sync(name: str, **kw: Any) -> JobState:
    return JobState(name=name, role="sync", completions=1, **kw)


def done(name: str) -> JobState:
    return sync(name, complete=True, succeeded=1, start_time="2026-01-01T00:00:00Z", completion_time=T1)


def failed(name: str, message: str = "") -> JobState:
    reason = "PodFailurePolicy"
    return sync(
        name, failed_terminal=True, failed=1, failure_reason=reason, failure_message=message, completion_time=T1
    )


def kids(*jobs: JobState, results: dict[str, dict[str, Any]] | None = None) -> Children:
    """Sync Jobs, and the termination message of each one's pod (by Job name)."""
    pods = {
        f"{job}-0-x": PodState(f"{job}-0-x", job, 0, "Succeeded", None, exit_code=0, result=r)
        for job, r in (results or {}).items()
    }
    return Children(jobs={j.name: j for j in jobs}, pods=pods)


OWN_COUNTS = {"knowledge": 10, "freeform_skill": 20, "grounded_skill": 5}
VALID = {"valid": True, "revision": "abc123", "leaves": LEAVES}
SYNCED = {"Valid": ("True", "Synced"), "Ready": ("True", "Synced")}
SYNCING = {"Ready": ("False", "Syncing"), "Valid": ("Unknown", "Syncing")}


@dataclass
class Case:
    #: inputs
    children: Children = field(default_factory=Children)
    spec: dict[str, Any] = field(default_factory=lambda: dict(GIT))
    status: dict[str, Any] | None = None
    generation: int = 1
    pinned: tuple[str, ...] = ()
    #: expected
    phase: str | None = None
    conditions: dict[str, tuple[str, str]] = field(default_factory=dict)
    create: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    #: fields that must not be in status
    absent: tuple[str, ...] = ()


CASES = [
    pytest.param(
        Case(phase="Pending", conditions=SYNCING, create=["tax-sync-g1"], absent=("counts", "snapshot", "revision")),
        id="fresh-creates-the-sync-job",
    ),
    pytest.param(
        Case(children=kids(sync("tax-sync-g1")), phase="Pending", conditions=SYNCING),
        id="sync-job-created-pod-not-started",
    ),
    pytest.param(
        Case(children=kids(sync("tax-sync-g1", active=1)), phase="Syncing", conditions=SYNCING),
        id="sync-running",
    ),
    pytest.param(
        Case(
            children=kids(done("tax-sync-g1"), results={"tax-sync-g1": VALID}),
            phase="Ready",
            conditions=SYNCED,
            fields={
                "revision": "abc123",
                "counts": {"knowledge": 1, "freeformSkill": 2, "groundedSkill": 1, "total": 4},
                "leaves": LEAF_STATUS,
                "errors": [],
                "errorCount": 0,
                "snapshot": {"claimName": "labrador-workspace", "path": "taxonomies/ns/tax/tax-sync-g1"},
                "lastSyncTime": T1,
            },
            messages={"Ready": "revision abc123"},
        ),
        id="succeeded-ready-with-counts-from-the-leaves",
    ),
    pytest.param(
        Case(
            children=kids(
                done("tax-sync-g1"),
                results={"tax-sync-g1": {**VALID, "counts": OWN_COUNTS}},
            ),
            phase="Ready",
            conditions=SYNCED,
            fields={"counts": {"knowledge": 10, "freeformSkill": 20, "groundedSkill": 5, "total": 35}},
        ),
        id="succeeded-ready-with-the-syncs-own-counts",
    ),
    pytest.param(
        Case(
            children=kids(done("tax-sync-g1")),
            phase="Ready",
            conditions=SYNCED,
            fields={"counts": {"knowledge": 0, "freeformSkill": 0, "groundedSkill": 0, "total": 0}, "errorCount": 0},
            messages={"Ready": "revision ?"},
            absent=("revision",),
        ),
        id="succeeded-without-a-result",
    ),
    pytest.param(
        Case(
            children=kids(
                failed("tax-sync-g1"),
                results={"tax-sync-g1": {"valid": False, "errors": ERRORS, "error_count": 12, "leaves": LEAVES}},
            ),
            phase="Invalid",
            conditions={"Valid": ("False", "ValidationFailed"), "Ready": ("False", "ValidationFailed")},
            fields={"errors": ERRORS, "errorCount": 12, "lastSyncTime": T1},
            messages={
                "Valid": "12 validation error(s): compositional_skills/writing/poems/qna.yaml:7: seed_examples",
                "Ready": "qna.yaml:7:",
            },
        ),
        id="invalid-with-file-line-errors",
    ),
    pytest.param(
        Case(
            children=kids(failed("tax-sync-g1"), results={"tax-sync-g1": {"valid": False}}),
            phase="Invalid",
            conditions={"Valid": ("False", "ValidationFailed"), "Ready": ("False", "ValidationFailed")},
            fields={"errors": [], "errorCount": 0},
            messages={"Valid": "0 validation error(s)"},
        ),
        id="invalid-without-errors-listed",
    ),
    pytest.param(
        Case(
            children=kids(
                failed("tax-sync-g1"), results={"tax-sync-g1": {"error": "git clone: could not resolve host"}}
            ),
            phase="Failed",
            conditions={"Valid": ("Unknown", "SourceUnreachable"), "Ready": ("False", "SourceUnreachable")},
            messages={"Valid": "could not resolve host", "Ready": "could not resolve host"},
        ),
        id="failed-source-unreachable",
    ),
    pytest.param(
        Case(
            children=kids(failed("tax-sync-g1", "Job has reached the specified backoff limit")),
            phase="Failed",
            conditions={"Valid": ("Unknown", "SyncFailed"), "Ready": ("False", "SyncFailed")},
            messages={"Ready": "backoff limit"},
        ),
        id="failed-sync-job",
    ),
    pytest.param(
        Case(
            children=kids(failed("tax-sync-g1"), results={"tax-sync-g1": {"message": "out of disk"}}),
            phase="Failed",
            conditions={"Valid": ("Unknown", "SyncFailed"), "Ready": ("False", "SyncFailed")},
            messages={"Ready": "out of disk"},
        ),
        id="failed-with-a-message",
    ),
    pytest.param(
        Case(
            children=kids(failed("tax-sync-g1")),
            phase="Failed",
            conditions={"Valid": ("Unknown", "SyncFailed"), "Ready": ("False", "SyncFailed")},
            messages={"Ready": "the sync Job failed"},
        ),
        id="failed-without-any-words",
    ),
    pytest.param(
        Case(spec=REFRESH, phase="Pending", conditions=SYNCING, create=[f"tax-sync-g1-w{W}"]),
        id="refresh-interval-first-window",
    ),
    pytest.param(
        Case(
            spec=REFRESH,
            children=kids(done(f"tax-sync-g1-w{W - 1}"), results={f"tax-sync-g1-w{W - 1}": VALID}),
            phase="Ready",
            conditions=SYNCED,
            create=[f"tax-sync-g1-w{W}"],
            fields={"snapshot": {"claimName": "labrador-workspace", "path": f"taxonomies/ns/tax/tax-sync-g1-w{W - 1}"}},
        ),
        id="refresh-interval-new-window-stays-ready-on-the-last-sync",
    ),
    pytest.param(
        Case(
            spec=REFRESH,
            children=kids(
                done(f"tax-sync-g1-w{W - 1}"),
                done(f"tax-sync-g1-w{W}"),
                results={f"tax-sync-g1-w{W - 1}": VALID, f"tax-sync-g1-w{W}": {**VALID, "revision": "def456"}},
            ),
            phase="Ready",
            conditions=SYNCED,
            fields={"revision": "def456"},
            messages={"Ready": "revision def456"},
        ),
        id="refresh-interval-revision-moves-with-the-latest-window",
    ),
    pytest.param(
        Case(
            spec=REFRESH,
            children=kids(
                done(f"tax-sync-g1-w{W - 10}"),
                failed(f"tax-sync-g1-w{W - 9}"),
                sync(f"tax-sync-g1-w{W}", active=1),
                results={f"tax-sync-g1-w{W - 10}": VALID, f"tax-sync-g1-w{W - 9}": {"error": "timeout"}},
            ),
            phase="Failed",
            conditions={"Valid": ("Unknown", "SourceUnreachable"), "Ready": ("False", "SourceUnreachable")},
        ),
        id="refresh-interval-latest-finished-window-decides-while-the-next-runs",
    ),
    pytest.param(
        Case(
            generation=2,
            status={"phase": "Ready", "observedGeneration": 1, "revision": "abc123"},
            children=kids(done("tax-sync-g1"), results={"tax-sync-g1": VALID}),
            phase="Pending",
            conditions=SYNCING,
            create=["tax-sync-g2"],
        ),
        id="generation-change-syncs-again-ignoring-the-old-generation",
    ),
    pytest.param(
        Case(
            generation=2,
            children=kids(done("tax-sync-g1"), done("tax-sync-g2"), results={"tax-sync-g2": VALID}),
            phase="Ready",
            conditions=SYNCED,
            fields={"snapshot": {"claimName": "labrador-workspace", "path": "taxonomies/ns/tax/tax-sync-g2"}},
        ),
        id="generation-change-ready-from-its-own-sync",
    ),
    pytest.param(
        Case(
            children=kids(
                done("tax-sync-g1"),
                JobState(name="tax-other", role="other", completions=1, failed_terminal=True),
                results={"tax-sync-g1": VALID},
            ),
            phase="Ready",
            conditions=SYNCED,
        ),
        id="only-sync-jobs-count",
    ),
]


def run(c: Case) -> Plan:
    return decide.plan(
        owner=OWNER,
        spec=TaxonomySpec.model_validate(c.spec),
        generation=c.generation,
        status=c.status,
        children=c.children,
        now_epoch=NOW,
        settings=SETTINGS,
        pinned=c.pinned,
    )


@pytest.mark.parametrize("case", CASES)
def test_taxonomy_decision_table(case: Case) -> None:
    p = run(case)
    assert p.status["phase"] == case.phase
    assert p.status["observedGeneration"] == case.generation
    got = {c["type"]: (c["status"], c["reason"]) for c in p.status["conditions"]}
    assert got == case.conditions and len(got) == len(p.status["conditions"])
    assert all(c["observedGeneration"] == case.generation for c in p.status["conditions"])
    for type_, words in case.messages.items():
        message = next(c["message"] for c in p.status["conditions"] if c["type"] == type_)
        assert words in message, (type_, message)
    assert [(m["kind"], m["metadata"]["name"]) for m in p.create] == [("Job", n) for n in case.create]
    assert p.patch == [] and p.events == []
    for key, value in case.fields.items():
        assert p.status.get(key) == value, key
    for key in case.absent:
        assert key not in p.status, key


def keep_args(manifest: dict[str, Any]) -> list[str]:
    argv = manifest["spec"]["template"]["spec"]["containers"][0]["command"]
    return [argv[i + 1] for i, a in enumerate(argv) if a == "--keep-snapshot"]


@pytest.mark.parametrize(
    ("pinned", "kept"),
    [
        pytest.param((), [], id="none"),
        pytest.param(
            ("taxonomies/ns/tax/tax-sync-g1", "taxonomies/ns/tax/tax-sync-g1"),
            ["/workspace/taxonomies/ns/tax/tax-sync-g1"],
            id="pinned-once-each",
        ),
        pytest.param(
            ("taxonomies/ns/tax/tax-sync-g1-w7", "taxonomies/ns/tax/tax-sync-g1"),
            ["/workspace/taxonomies/ns/tax/tax-sync-g1", "/workspace/taxonomies/ns/tax/tax-sync-g1-w7"],
            id="pinned-sorted",
        ),
        pytest.param(("taxonomies/ns/other/other-sync-g1",), [], id="another-taxonomys-snapshot-is-not-ours"),
    ],
)
def test_taxonomy_new_sync_keeps_the_pinned_snapshots(pinned: tuple[str, ...], kept: list[str]) -> None:
    """The sync prunes older snapshots but those running SyntheticDataJobs read (plan's ``pinned``)."""
    p = run(Case(spec=REFRESH, pinned=pinned))
    (job,) = p.create
    assert keep_args(job) == kept


def test_taxonomy_existing_sync_job_is_not_recreated_for_new_pins() -> None:
    p = run(Case(children=kids(sync("tax-sync-g1", active=1)), pinned=("taxonomies/ns/tax/tax-sync-g0",)))
    assert p.create == []


def test_taxonomy_conditions_keep_their_transition_time() -> None:
    c = Case(children=kids(done("tax-sync-g1"), results={"tax-sync-g1": VALID}))
    old = [dict(x, lastTransitionTime="2020-01-01T00:00:00Z") for x in run(c).status["conditions"]]
    again = run(Case(children=c.children, status={"conditions": old}))
    assert {x["lastTransitionTime"] for x in again.status["conditions"]} == {"2020-01-01T00:00:00Z"}
