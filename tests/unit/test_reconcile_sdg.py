"""The SyntheticDataJob decision (reconcile.sdg.plan) as a table: spec + status + observed children + the Taxonomy
in, phase + conditions + children to create or patch out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from labrador_operator.api.sdg import SyntheticDataJobSpec
from labrador_operator.builders import sdg as b
from labrador_operator.reconcile import sdg as decide
from labrador_operator.reconcile.observe import Children, JobState, PodState
from labrador_operator.reconcile.plan import Plan
from labrador_operator.settings import Settings

OWNER = b.Owner("ns", "sdg", "uid")
SETTINGS = Settings()
GENERATION = 4
SNAPSHOT = "taxonomies/ns/tax/tax-sync-g1"
READY = {"status": {"phase": "Ready", "revision": "abc123", "snapshot": {"claimName": "ws", "path": SNAPSHOT}}}
T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z", "2026-01-01T00:12:00Z"
RULE = "Container main for pod ns/sdg-generate-0-x failed with exit code 2 matching FailJob rule at index 0"


def spec(**over: Any) -> SyntheticDataJobSpec:
    base: dict[str, Any] = {
        "taxonomyRef": {"name": "tax"},
        "teacher": {"endpoint": {"url": "http://teacher:8000/v1", "model": "m"}},
        "parallelism": 2,
    }
    base.update(over)
    return SyntheticDataJobSpec.model_validate(base)


def gen(**kw: Any) -> JobState:
    return JobState(name="sdg-generate", role="generate", completions=2, **kw)


def mix(**kw: Any) -> JobState:
    return JobState(name="sdg-mix", role="mix", completions=1, **kw)


def pod(name: str, job: str, index: int = 0, phase: str = "Running", **kw: Any) -> PodState:
    """A pod of ``job``; a Succeeded one exited 0 unless ``exit_code`` says otherwise."""
    kw.setdefault("exit_code", 0 if phase == "Succeeded" else None)
    return PodState(name=name, job=job, index=index, phase=phase, ip="10.0.0.1" if phase == "Running" else None, **kw)


def kids(*jobs: JobState, pods: tuple[PodState, ...] = (), config: bool = True) -> Children:
    return Children(
        jobs={j.name: j for j in jobs},
        pods={p.name: p for p in pods},
        config_maps={"sdg-config"} if config else set(),
    )


GEN_DONE = gen(complete=True, succeeded=2, start_time=T0, completion_time=T1)
MIX_DONE = mix(complete=True, succeeded=1, start_time=T1, completion_time=T2)
MIX_RESULT = {"counts": {"generated": 120, "kept": 100, "dropped": 20, "knowledge": 60, "skills": 40}}


INVALID_SPEC = {"type": "Ready", "status": "False", "reason": "InvalidSpec", "lastTransitionTime": T0}


def failed_conds(reason: str) -> dict[str, tuple[str, str]]:
    return {
        "TaxonomyReady": ("True", "TaxonomyPinned"),
        "Running": ("False", reason),
        "Ready": ("False", reason),
        "Failed": ("True", reason),
    }


#: the Taxonomy pinned and the job not suspended: every case past the gate
GOING = {"TaxonomyReady": ("True", "TaxonomyPinned"), "Suspended": ("False", "Generating")}
SUSPENDED = {
    "TaxonomyReady": ("True", "TaxonomyPinned"),
    "Suspended": ("True", "Suspended"),
    "Running": ("False", "Suspended"),
    "Ready": ("False", "Suspended"),
}


@dataclass
class Case:
    #: inputs
    children: Children = field(default_factory=Children)
    taxonomy: dict[str, Any] | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] | None = None
    #: expected
    phase: str | None = None
    conditions: dict[str, tuple[str, str]] = field(default_factory=dict)
    create: list[tuple[str, str]] = field(default_factory=list)
    patch: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    #: status fields that must be there with these values
    fields: dict[str, Any] = field(default_factory=dict)
    #: words the message of a condition contains
    messages: dict[str, str] = field(default_factory=dict)


CASES = [
    pytest.param(
        Case(
            taxonomy=None,
            phase="Waiting",
            conditions={"TaxonomyReady": ("False", "TaxonomyNotFound"), "Ready": ("False", "TaxonomyNotFound")},
            messages={"TaxonomyReady": "Taxonomy tax does not exist"},
        ),
        id="taxonomy-not-found",
    ),
    pytest.param(
        Case(
            taxonomy={"status": {"phase": "Syncing"}},
            phase="Waiting",
            conditions={"TaxonomyReady": ("False", "WaitingForTaxonomy"), "Ready": ("False", "WaitingForTaxonomy")},
            messages={"TaxonomyReady": "phase Syncing"},
        ),
        id="waiting-for-the-taxonomy-to-sync",
    ),
    pytest.param(
        Case(
            taxonomy={},
            phase="Waiting",
            conditions={"TaxonomyReady": ("False", "WaitingForTaxonomy"), "Ready": ("False", "WaitingForTaxonomy")},
            messages={"TaxonomyReady": "phase Pending"},
        ),
        id="waiting-for-a-taxonomy-without-status",
    ),
    pytest.param(
        Case(
            taxonomy={"status": {"phase": "Ready", "revision": "abc123"}},
            phase="Waiting",
            conditions={"TaxonomyReady": ("False", "WaitingForTaxonomy"), "Ready": ("False", "WaitingForTaxonomy")},
        ),
        id="waiting-for-a-ready-taxonomy-without-snapshot",
    ),
    pytest.param(
        Case(
            taxonomy={"status": {"phase": "Invalid", "errorCount": 3}},
            phase="Waiting",
            conditions={"TaxonomyReady": ("False", "TaxonomyInvalid"), "Ready": ("False", "TaxonomyInvalid")},
            messages={"TaxonomyReady": "is invalid (3 errors)", "Ready": "invalid"},
        ),
        id="taxonomy-invalid",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            children=Children(),
            phase="Pending",
            conditions={**GOING, "Running": ("False", "Starting"), "Ready": ("False", "Generating")},
            create=[("ConfigMap", "sdg-config"), ("Job", "sdg-generate")],
            fields={
                "taxonomyRevision": "abc123",
                "taxonomySnapshot": SNAPSHOT,
                "usage": {"gpuSeconds": 0, "tokens": 0},
            },
            messages={"TaxonomyReady": "revision abc123", "Running": "2 shard(s): waiting for the pods to start"},
        ),
        id="fresh-pins-the-revision-and-creates-config-and-generate",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            children=kids(gen(active=2, start_time=T0)),
            phase="Pending",
            conditions={**GOING, "Running": ("False", "Starting"), "Ready": ("False", "Generating")},
            fields={"shards": {"total": 2, "active": 2, "succeeded": 0, "failed": 0}, "startTime": T0},
        ),
        id="generate-job-created-pods-not-up",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            children=kids(gen(active=2, ready=2, start_time=T0)),
            phase="Running",
            conditions={**GOING, "Running": ("True", "Generating"), "Ready": ("False", "Generating")},
            fields={"shards": {"total": 2, "active": 2, "succeeded": 0, "failed": 0}},
            messages={"Running": "2 shard(s)"},
        ),
        id="job-running",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            children=kids(
                gen(active=2, ready=1, failed=1, start_time=T0),
                pods=(pod("sdg-generate-0-a", "sdg-generate", phase="Failed", exit_code=1),),
            ),
            phase="Running",
            conditions={**GOING, "Running": ("True", "Generating"), "Ready": ("False", "Generating")},
            fields={"shards": {"total": 2, "active": 2, "succeeded": 0, "failed": 1}},
        ),
        id="retriable-pod-failure-within-backoff-keeps-running",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            children=kids(
                gen(active=2, ready=2, start_time=T0),
                pods=(
                    pod("sdg-generate-1-a", "sdg-generate", 1, phase="Failed", exit_code=143),
                    pod("sdg-generate-1-b", "sdg-generate", 1),
                ),
            ),
            phase="Running",
            conditions={**GOING, "Running": ("True", "Generating"), "Ready": ("False", "Generating")},
            fields={"shards": {"total": 2, "active": 2, "succeeded": 0, "failed": 0}},
        ),
        id="preempted-shard-is-replaced-not-counted",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            children=kids(
                gen(active=2, start_time=T0),
                pods=(
                    pod(
                        "sdg-generate-0-a",
                        "sdg-generate",
                        phase="Pending",
                        problem="ImagePullBackOff",
                        problem_message="container main: Back-off pulling image",
                    ),
                ),
            ),
            phase="Pending",
            conditions={**GOING, "Running": ("False", "ImagePullBackOff"), "Ready": ("False", "Generating")},
            messages={"Running": "Back-off pulling image"},
        ),
        id="pod-problem-is-the-running-condition",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            children=kids(
                gen(
                    failed_terminal=True,
                    failed=1,
                    failure_reason="PodFailurePolicy",
                    failure_message=RULE,
                    completion_time=T1,
                )
            ),
            phase="Failed",
            conditions=failed_conds("UserError"),
            fields={"completionTime": T1},
            messages={"Failed": "user-error code"},
        ),
        id="job-failed-with-a-user-error-exit-code",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            children=kids(gen(failed_terminal=True, failed=7, failure_reason="BackoffLimitExceeded")),
            phase="Failed",
            conditions=failed_conds("BackoffLimitExceeded"),
            messages={"Failed": "failed 7 times"},
        ),
        id="job-failed-retriable-backoff-spent",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            children=kids(gen(failed_terminal=True, failure_reason="DeadlineExceeded", completion_time=T1)),
            phase="Failed",
            conditions=failed_conds("DeadlineExceeded"),
            messages={"Failed": "activeDeadlineSeconds"},
        ),
        id="job-failed-deadline",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            children=kids(gen(failed_terminal=True, failure_reason="", failure_message="")),
            phase="Failed",
            conditions=failed_conds("JobFailed"),
            messages={"Failed": "Job sdg-generate failed"},
        ),
        id="job-failed-without-a-reason",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            children=kids(GEN_DONE, mix(failed_terminal=True, failure_reason="BackoffLimitExceeded", failed=3)),
            phase="Failed",
            conditions=failed_conds("BackoffLimitExceeded"),
            messages={"Failed": "Job sdg-mix failed 3 times"},
        ),
        id="mix-failed",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            spec={"runPolicy": {"suspend": True}},
            children=kids(gen(active=2, ready=2, start_time=T0)),
            phase="Suspended",
            conditions=SUSPENDED,
            patch=[("Job", "sdg-generate", {"spec": {"suspend": True}})],
        ),
        id="spec-suspend-suspends-the-running-job",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            spec={"runPolicy": {"suspend": True}},
            children=Children(),
            phase="Suspended",
            conditions=SUSPENDED,
            messages={"Suspended": "runPolicy.suspend is true"},
        ),
        id="spec-suspend-creates-nothing",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            spec={"runPolicy": {"suspend": True}},
            children=kids(gen(suspend_requested=True, suspended=True)),
            phase="Suspended",
            conditions=SUSPENDED,
        ),
        id="spec-suspend-already-suspended-no-patch",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            children=kids(gen(suspend_requested=True, suspended=True)),
            phase="Pending",
            conditions={**GOING, "Running": ("False", "Starting"), "Ready": ("False", "Generating")},
            patch=[("Job", "sdg-generate", {"spec": {"suspend": False}})],
        ),
        id="resume-unsuspends-the-job",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            spec={"runPolicy": {"queueName": "q"}},
            children=kids(gen(suspend_requested=True, suspended=True)),
            phase="Pending",
            conditions={**GOING, "Running": ("False", "Starting"), "Ready": ("False", "Generating")},
        ),
        id="kueue-suspended-kueue-owns-the-flag",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            spec={"runPolicy": {"suspend": True, "queueName": "q"}},
            children=kids(gen(active=2, ready=2)),
            phase="Suspended",
            conditions=SUSPENDED,
            patch=[("Job", "sdg-generate", {"spec": {"suspend": True}})],
        ),
        id="kueue-queue-with-spec-suspend-still-suspends",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            spec={"runPolicy": {"suspend": True}},
            children=kids(GEN_DONE, MIX_DONE),
            phase="Succeeded",
            conditions={
                **GOING,
                "Running": ("False", "Succeeded"),
                "Ready": ("True", "Succeeded"),
                "Failed": ("False", "Succeeded"),
            },
        ),
        id="suspend-after-mix-completed-still-succeeds",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            children=kids(GEN_DONE),
            phase="Mixing",
            conditions={**GOING, "Running": ("True", "Mixing"), "Ready": ("False", "Mixing")},
            create=[("Job", "sdg-mix")],
            fields={"shards": {"total": 2, "active": 0, "succeeded": 2, "failed": 0}},
        ),
        id="generated-creates-the-mix-job",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            children=kids(GEN_DONE, mix(active=1, ready=1, start_time=T1)),
            phase="Mixing",
            conditions={**GOING, "Running": ("True", "Mixing"), "Ready": ("False", "Mixing")},
        ),
        id="mixing",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            status={"progress": {"percent": 97, "etaSeconds": 30, "eta": "30s", "samples": 100}},
            children=kids(
                GEN_DONE,
                MIX_DONE,
                pods=(
                    pod(
                        "sdg-generate-0-a",
                        "sdg-generate",
                        0,
                        "Succeeded",
                        result={"output_tokens": 500, "dtype": "bf16"},
                    ),
                    pod("sdg-generate-1-a", "sdg-generate", 1, "Succeeded", result={"output_tokens": 700}),
                    pod("sdg-mix-0-a", "sdg-mix", 0, "Succeeded", result=MIX_RESULT),
                ),
            ),
            phase="Succeeded",
            conditions={
                **GOING,
                "Running": ("False", "Succeeded"),
                "Ready": ("True", "Succeeded"),
                "Failed": ("False", "Succeeded"),
            },
            fields={
                "outputs": {**b.outputs(OWNER), "counts": MIX_RESULT["counts"]},
                "completionTime": T2,
                "startTime": T0,
                "usage": {"gpuSeconds": 0, "tokens": 1200},
                "teacherDtype": "bf16",
                "progress": {"percent": 100, "etaSeconds": 0, "eta": "0s", "samples": 100},
                "taxonomyRevision": "abc123",
            },
            messages={"Ready": "data in sdg/ns/sdg"},
        ),
        id="succeeded-with-outputs",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            spec={"teacher": {"model": {"uri": "pvc://m/teacher"}}, "resources": {"gpus": 4}},
            children=kids(GEN_DONE, MIX_DONE),
            phase="Succeeded",
            fields={"usage": {"gpuSeconds": 600 * 2 * 4, "tokens": 0}, "outputs": b.outputs(OWNER)},
        ),
        id="succeeded-in-pod-teacher-counts-gpu-seconds",
    ),
    pytest.param(
        Case(
            taxonomy={"status": {"phase": "Syncing", "revision": "def456"}},
            status={"taxonomyRevision": "abc123", "taxonomySnapshot": SNAPSHOT},
            children=kids(gen(active=2, ready=2)),
            phase="Running",
            conditions={**GOING, "Running": ("True", "Generating"), "Ready": ("False", "Generating")},
            fields={"taxonomyRevision": "abc123", "taxonomySnapshot": SNAPSHOT},
            messages={"TaxonomyReady": "revision abc123"},
        ),
        id="pinned-revision-survives-a-resync",
    ),
    pytest.param(
        Case(
            taxonomy=None,
            status={"taxonomyRevision": "abc123", "taxonomySnapshot": SNAPSHOT},
            children=kids(gen(active=2, ready=2)),
            phase="Running",
            fields={"taxonomyRevision": "abc123", "taxonomySnapshot": SNAPSHOT},
        ),
        id="pinned-revision-survives-the-taxonomy-deleted",
    ),
    pytest.param(
        Case(
            taxonomy=None,
            status={"taxonomyRevision": "abc123"},
            children=Children(),
            phase="Waiting",
            conditions={"TaxonomyReady": ("False", "TaxonomyNotFound"), "Ready": ("False", "TaxonomyNotFound")},
        ),
        id="pinned-revision-without-its-config-waits-again",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            status={"phase": "Running", "observedGeneration": GENERATION - 1, "taxonomyRevision": "abc123"},
            children=kids(gen(active=2, ready=2)),
            phase="Running",
            fields={"observedGeneration": GENERATION},
        ),
        id="generation-change-is-observed",
    ),
    pytest.param(
        Case(
            taxonomy=READY,
            status={"phase": "Failed", "conditions": [INVALID_SPEC]},
            children=Children(),
            phase="Pending",
            create=[("ConfigMap", "sdg-config"), ("Job", "sdg-generate")],
        ),
        id="invalid-spec-failure-is-not-final",
    ),
]


def run(c: Case, generation: int = GENERATION) -> Plan:
    return decide.plan(
        owner=OWNER,
        spec=spec(**c.spec),
        generation=generation,
        status=c.status,
        children=c.children,
        taxonomy=c.taxonomy,
        settings=SETTINGS,
    )


@pytest.mark.parametrize("case", CASES)
def test_sdg_decision_table(case: Case) -> None:
    p = run(case)
    assert p.status["phase"] == case.phase
    assert p.status["observedGeneration"] == GENERATION
    got = {c["type"]: (c["status"], c["reason"]) for c in p.status["conditions"]}
    if case.conditions:
        assert got == case.conditions
    assert len(got) == len(p.status["conditions"]), "one condition per type"
    assert all(c["observedGeneration"] == GENERATION for c in p.status["conditions"])
    for type_, words in case.messages.items():
        message = next(c["message"] for c in p.status["conditions"] if c["type"] == type_)
        assert words in message, (type_, message)
    assert [(m["kind"], m["metadata"]["name"]) for m in p.create] == case.create
    assert p.patch == case.patch
    for key, value in case.fields.items():
        assert p.status.get(key) == value, key
    assert p.events == []


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
@pytest.mark.parametrize("generation", [GENERATION, GENERATION + 1])
def test_sdg_finished_never_starts_over(phase: str, generation: int) -> None:
    """Succeeded or Failed is final (children may be gone after their TTL), also after a spec edit."""
    done = Case(taxonomy=READY, status={"phase": phase, "observedGeneration": GENERATION, "conditions": []})
    p = run(done, generation)
    assert p.create == [] and p.patch == [] and p.status == {}


def test_sdg_created_children_carry_the_pinned_snapshot() -> None:
    p = run(Case(taxonomy=READY))
    config = next(m for m in p.create if m["kind"] == "ConfigMap")
    assert f"/{SNAPSHOT}" in config["data"]["generate.json"] and "abc123" in config["data"]["generate.json"]
    job = next(m for m in p.create if m["kind"] == "Job")
    assert job["spec"]["completions"] == 2


def test_sdg_conditions_keep_their_transition_time() -> None:
    c = Case(taxonomy=READY, children=kids(gen(active=2, ready=2)))
    first = run(c)
    old = [dict(x, lastTransitionTime=T0) for x in first.status["conditions"]]
    again = run(Case(taxonomy=READY, children=c.children, status={"conditions": old}))
    assert {x["lastTransitionTime"] for x in again.status["conditions"]} == {T0}
    done = run(Case(taxonomy=READY, children=kids(GEN_DONE, MIX_DONE), status={"conditions": old}))
    moved = {x["type"] for x in done.status["conditions"] if x["lastTransitionTime"] != T0}
    assert moved == {"Running", "Ready", "Failed"}  # Running and Ready flipped; Failed is new
