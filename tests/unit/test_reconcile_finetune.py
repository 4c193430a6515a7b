"""The FineTuneJob decision function, driven by observed children as data."""

from __future__ import annotations

from typing import Any

from labrador_operator.api.finetune import FineTuneJobSpec
from labrador_operator.builders import finetune as b
from labrador_operator.reconcile import finetune as decide
from labrador_operator.reconcile.observe import Children, JobState, PodState
from labrador_operator.settings import Settings

OWNER = b.Owner("ns", "ft", "uid")
SETTINGS = Settings()


def spec(**over: Any) -> FineTuneJobSpec:
    base: dict[str, Any] = {
        "model": {"uri": "pvc://m/x"},
        "data": {"knowledgePath": "k", "skillsPath": "s"},
        "evaluation": {"enabled": False},
        "resources": {"nodes": 2, "gpusPerNode": 4},
    }
    base.update(over)
    return FineTuneJobSpec.model_validate(base)


def job(name: str, **kw: Any) -> JobState:
    defaults: dict[str, Any] = {"role": name.split("-", 1)[1], "completions": 2}
    defaults.update(kw)
    return JobState(name=name, **defaults)


DONE = {
    "complete": True,
    "succeeded": 2,
    "start_time": "2026-01-01T00:00:00Z",
    "completion_time": "2026-01-01T00:10:00Z",
}


def run(
    s: FineTuneJobSpec, kids: Children, dep: decide.DataDependency | None = None, status: dict[str, Any] | None = None
) -> Any:
    return decide.plan(
        owner=OWNER,
        spec=s,
        generation=3,
        status=status,
        children=kids,
        dep=dep or decide.explicit_data(s) or decide.DataDependency(),
        settings=SETTINGS,
    )


def conds(p: Any) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in p.status["conditions"]}


def test_fresh_job_creates_the_service_and_the_first_phase_only() -> None:
    p = run(spec(), Children())
    # no ConfigMap: the Job carries its run config (builders.common.attach_config)
    assert [(m["kind"], m["metadata"]["name"]) for m in p.create] == [
        ("Service", "ft-knowledge"),
        ("Job", "ft-knowledge"),
    ]
    assert p.status["phase"] == "Pending" and p.status["currentPhase"] == "knowledge"
    assert p.status["observedGeneration"] == 3


def test_a_job_whose_pods_wait_writes_no_start_time_until_they_run() -> None:
    """The Job controller sets startTime as it creates the pods: the status gains it with the Running transition,
    one status write for both (docs/operator-scale.md: writes per job)."""
    created = run(spec(), Children(services={"ft-knowledge"}))
    waiting = Children(jobs={"ft-knowledge": job("ft-knowledge", active=2, start_time="t0")}, services={"ft-knowledge"})
    pending = run(spec(), waiting)
    assert pending.status == created.status  # nothing to write
    assert pending.status["phase"] == "Pending" and "startTime" not in pending.status
    assert "startTime" not in pending.status["phases"][0]
    waiting.jobs["ft-knowledge"] = job("ft-knowledge", active=2, ready=2, start_time="t0")
    running = run(spec(), waiting)
    assert running.status["phase"] == "Running" and running.status["startTime"] == "t0"
    assert running.status["phases"][0]["startTime"] == "t0"


def test_next_phase_only_after_the_previous_completes() -> None:
    kids = Children(
        jobs={"ft-knowledge": job("ft-knowledge", active=2, ready=2, start_time="t")},
        services={"ft-knowledge"},
    )
    p = run(spec(), kids)
    assert p.create == [] and p.status["phase"] == "Running"
    kids.jobs["ft-knowledge"] = job("ft-knowledge", **DONE)
    kids.pods["p0"] = PodState(
        name="p0",
        job="ft-knowledge",
        index=0,
        phase="Succeeded",
        ip=None,
        exit_code=0,
        result={"final_loss": 0.42, "tokens": 1000},
    )
    p = run(spec(), kids)
    assert [m["metadata"]["name"] for m in p.create] == ["ft-skills", "ft-skills"]
    knowledge = p.status["phases"][0]
    assert knowledge["state"] == "Succeeded" and knowledge["finalLoss"] == 0.42 and knowledge["tokens"] == 1000
    assert knowledge["gpuSeconds"] == 600 * 8
    assert p.status["currentPhase"] == "skills"


def test_all_phases_done_succeeds_with_outputs_and_usage() -> None:
    kids = Children(
        jobs={"ft-knowledge": job("ft-knowledge", **DONE), "ft-skills": job("ft-skills", **DONE)},
        services={"ft-knowledge", "ft-skills"},
    )
    p = run(spec(), kids)
    assert p.create == []
    assert p.status["phase"] == "Succeeded" and "currentPhase" not in p.status
    assert p.status["outputs"] == {"model": "models/ns/ft"}
    assert p.status["usage"]["gpuSeconds"] == 2 * 600 * 8
    assert conds(p)["Ready"] == ("True", "Succeeded")


def test_failure_reasons_are_actionable() -> None:
    """A one-node phase: the Job's own retries (backoffLimit) are the restarts (multi-node: see the group test)."""
    one = spec(resources={"nodes": 1, "gpusPerNode": 1})
    for job_reason, reason in (
        ("PodFailurePolicy", "UserError"),
        ("DeadlineExceeded", "DeadlineExceeded"),
        ("BackoffLimitExceeded", "BackoffLimitExceeded"),
    ):
        kids = Children(
            jobs={"ft-knowledge": job("ft-knowledge", failed_terminal=True, failed=1, failure_reason=job_reason)},
            services={"ft-knowledge"},
        )
        p = run(one, kids)
        assert p.status["phase"] == "Failed" and conds(p)["Failed"] == ("True", reason)
        assert p.create == []


def test_waiting_and_failed_data() -> None:
    s = spec(data={"syntheticDataJobRef": {"name": "sdg"}})
    p = run(s, Children(), decide.data_from_sdg(s, None))
    assert p.status["phase"] == "Waiting" and conds(p)["DataReady"] == ("False", "SyntheticDataJobNotFound")
    p = run(s, Children(), decide.data_from_sdg(s, {"status": {"phase": "Running"}}))
    assert conds(p)["DataReady"] == ("False", "WaitingForSyntheticData") and p.create == []
    p = run(s, Children(), decide.data_from_sdg(s, {"status": {"phase": "Failed"}}))
    assert p.status["phase"] == "Failed"
    outputs = {"knowledge": "sdg/k.jsonl", "skills": "sdg/s.jsonl", "multipleChoice": "sdg/m.jsonl", "heldOut": "h"}
    sdg = {"spec": {"mixing": {"replay": [{"path": "replay/a.jsonl", "samplingSize": 10}]}}}
    ok = decide.data_from_sdg(s, {**sdg, "status": {"phase": "Succeeded", "outputs": outputs}})
    assert ok.data == b.Data(
        knowledge="sdg/k.jsonl", skills="sdg/s.jsonl", multiple_choice="sdg/m.jsonl", held_out="h",
        general=("replay/a.jsonl",),
    )  # fmt: skip


def test_suspend_patches_running_jobs_and_creates_nothing() -> None:
    kids = Children(
        jobs={"ft-knowledge": job("ft-knowledge", active=2, ready=2)},
        services={"ft-knowledge"},
    )
    p = run(spec(runPolicy={"suspend": True}), kids)
    assert p.patch == [("Job", "ft-knowledge", {"spec": {"suspend": True}})]
    assert p.status["phase"] == "Suspended" and p.create == []
    kids.jobs["ft-knowledge"] = job("ft-knowledge", suspend_requested=True, suspended=True)
    p = run(spec(), kids)
    assert p.patch == [("Job", "ft-knowledge", {"spec": {"suspend": False}})]
    # with a Kueue queue, Kueue owns the flag
    assert run(spec(runPolicy={"queueName": "q"}), kids).patch == []


def test_condition_transition_time_moves_only_on_flips() -> None:
    kids = Children(
        jobs={"ft-knowledge": job("ft-knowledge", active=2, ready=2)},
        services={"ft-knowledge"},
    )
    first = run(spec(), kids)
    old = [dict(c, lastTransitionTime="2020-01-01T00:00:00Z") for c in first.status["conditions"]]
    again = run(spec(), kids, status={"conditions": old})
    assert {c["lastTransitionTime"] for c in again.status["conditions"]} == {"2020-01-01T00:00:00Z"}


def test_a_finished_job_never_starts_over_when_its_children_are_cleaned_up() -> None:
    done = {"phase": "Succeeded", "observedGeneration": 3, "conditions": []}
    p = run(spec(), Children(), status=done)
    assert p.create == [] and p.patch == [] and p.status == {}
    # nor after a later spec edit
    assert run(spec(), Children(), status={**done, "observedGeneration": 2}).create == []


def test_finished_progress_reads_complete() -> None:
    from labrador_operator.reconcile.common import done_progress

    last = {"percent": 83, "step": 2, "totalSteps": 3, "etaSeconds": 5, "eta": "5s", "loss": 1.5}
    assert done_progress({"progress": last}) == {
        "progress": {"percent": 100, "step": 2, "totalSteps": 3, "etaSeconds": 0, "eta": "0s", "loss": 1.5}
    }
    assert done_progress({}) == {}


def test_pod_problems_become_the_running_condition() -> None:
    """What the scheduler or kubelet says about a stuck pod is the Running condition's reason and message; a Job
    whose pods are not up reads Running=False (Starting), and between two phases the job stays Running."""
    from labrador_operator.reconcile.observe import pod_state

    def pod(status: dict[str, Any], name: str = "ft-knowledge-0-abc") -> PodState:
        meta = {"name": name, "labels": {"batch.kubernetes.io/job-name": "ft-knowledge"},
                "annotations": {"batch.kubernetes.io/job-completion-index": "0"}}  # fmt: skip
        return pod_state({"metadata": meta, "status": status})

    gpu_msg = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    scheduled = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": gpu_msg}
    unschedulable = pod({"phase": "Pending", "conditions": [scheduled]})
    back_off = {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "trainer:nope"'}}
    pull = pod({"phase": "Pending", "containerStatuses": [{"name": "main", "state": back_off}]})
    crash = {"name": "main", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}  # fmt: skip
    oom = pod({"phase": "Running", "containerStatuses": [crash]})
    assert (unschedulable.problem, pull.problem, oom.problem) == ("Unschedulable", "ImagePullBackOff", "OOMKilled")

    cases = [
        (unschedulable, "Unschedulable", "Insufficient nvidia.com/gpu"),
        (pull, "ImagePullBackOff", "trainer:nope"),
        (oom, "OOMKilled", "memory limit"),
    ]
    for p, reason, words in cases:
        kids = Children(jobs={"ft-knowledge": job("ft-knowledge", active=2)}, pods={p.name: p})
        plan = run(spec(), kids)
        running = next(c for c in plan.status["conditions"] if c["type"] == "Running")
        assert (running["status"], running["reason"]) == ("False", reason) and words in running["message"], running
        assert plan.status["phase"] == "Pending"

    quiet = run(spec(), Children(jobs={"ft-knowledge": job("ft-knowledge", active=2)}))
    assert conds(quiet)["Running"] == ("False", "Starting") and quiet.status["phase"] == "Pending"
    between = run(
        spec(), Children(jobs={"ft-knowledge": job("ft-knowledge", **DONE), "ft-skills": job("ft-skills", active=2)})
    )
    assert between.status["phase"] == "Running" and conds(between)["Running"] == ("False", "Starting")
    up = run(spec(), Children(jobs={"ft-knowledge": job("ft-knowledge", active=2, ready=2)}))
    assert conds(up)["Running"] == ("True", "Training") and up.status["phase"] == "Running"


def test_refused_pods_become_the_running_condition() -> None:
    """A Job whose pods the API server refused (quota, LimitRange, Pod Security) has none: the FailedCreate reason
    the handlers found is the Running condition's; only Jobs short of live pods count as missing them."""
    refused = ("FailedCreate", 'pods "ft-knowledge-0-x" is forbidden: exceeded quota: small, requested: cpu=4')
    kids = Children(jobs={"ft-knowledge": job("ft-knowledge")}, job_problems={"ft-knowledge": refused})
    running = next(c for c in run(spec(), kids).status["conditions"] if c["type"] == "Running")
    assert (running["status"], running["reason"]) == ("False", "FailedCreate") and "exceeded quota" in running[
        "message"
    ]

    one = PodState("ft-knowledge-0-a", "ft-knowledge", 0, "Running", "10.0.0.1")
    assert Children(jobs={"ft-knowledge": job("ft-knowledge", active=1)}, pods={one.name: one}).missing_pods(
        "ft-knowledge"
    ), "two ranks needed, one live"
    two = PodState("ft-knowledge-1-a", "ft-knowledge", 1, "Pending", None)
    full = Children(jobs={"ft-knowledge": job("ft-knowledge", active=2)}, pods={p.name: p for p in (one, two)})
    assert not full.missing_pods("ft-knowledge")
    assert not Children(jobs={"ft-knowledge": job("ft-knowledge", **DONE)}).missing_pods("ft-knowledge")
    assert not Children(jobs={"ft-knowledge": job("ft-knowledge", suspended=True)}).missing_pods("ft-knowledge")
    assert not Children().missing_pods("ft-knowledge")
    # another parent's problems never come along with owned_by
    assert Children(jobs={}, job_problems={"ft-knowledge": refused}).owned_by("uid").job_problems == {}


def test_the_successful_attempts_result_wins() -> None:
    """After a retry both attempts' pods are there; the failed one's message must not become the phase's result,
    whichever the cache lists last."""
    ok = PodState("ft-knowledge-0-b", "ft-knowledge", 0, "Succeeded", None, 0, {"final_loss": 0.5, "tokens": 9})
    bad = PodState("ft-knowledge-0-a", "ft-knowledge", 0, "Failed", None, 1, {"error": "OOM", "final_loss": 99.0})
    for order in ((ok, bad), (bad, ok)):
        kids = Children(jobs={"ft-knowledge": job("ft-knowledge", **DONE)}, pods={p.name: p for p in order})
        assert kids.result("ft-knowledge") == ok.result
        entry = run(spec(), kids).status["phases"][0]
        assert entry["finalLoss"] == 0.5 and entry["tokens"] == 9


def test_children_are_the_parents_own_by_owner_uid() -> None:
    """A Job or pod that copies Labrador's labels (any namespace user can) is not the parent's child: results and
    states come only from the Jobs the parent object owns and the pods those Jobs own."""
    from labrador_operator.reconcile.observe import job_state, pod_state

    def owned(kind: str, uid: str) -> list[dict[str, Any]]:
        return [{"kind": kind, "name": "x", "uid": uid, "controller": True}]

    meta = {"name": "ft-knowledge", "uid": "job-1", "ownerReferences": owned("FineTuneJob", "uid")}
    mine = job_state({"metadata": meta, "spec": {"completions": 2}})
    fake_job = job_state({"metadata": {"name": "ft-skills", "uid": "job-2",
                                       "ownerReferences": owned("FineTuneJob", "other")}})  # fmt: skip
    labels = {"batch.kubernetes.io/job-name": "ft-knowledge"}
    real = pod_state({"metadata": {"name": "p1", "labels": labels, "ownerReferences": owned("Job", "job-1")},
                      "status": {"phase": "Succeeded"}})  # fmt: skip
    forged = pod_state({"metadata": {"name": "p0", "labels": labels}, "status": {"phase": "Succeeded"}})
    kids = Children(jobs={"ft-knowledge": mine, "ft-skills": fake_job}, pods={"p0": forged, "p1": real})
    own = kids.owned_by("uid")
    assert set(own.jobs) == {"ft-knowledge"} and set(own.pods) == {"p1"}


def test_a_multi_node_phase_restarts_as_a_group() -> None:
    """torchrun's static rendezvous cannot take a replacement rank: the phase Job fails whole on the first pod
    failure, and the operator starts the next attempt (resuming from the last saved state) — not counted when the
    pods were preempted, counted against runPolicy.backoffLimit when they crashed; a user error is final."""

    def failed(name: str, reason: str, message: str = "") -> JobState:
        return job(name, failed_terminal=True, failed=1, failure_reason=reason, failure_message=message)

    crash = failed("ft-knowledge", "BackoffLimitExceeded")
    plan = run(spec(), Children(jobs={"ft-knowledge": crash}))
    made = [(m["kind"], m["metadata"]["name"]) for m in plan.create]
    assert made == [("Service", "ft-knowledge-r1"), ("Job", "ft-knowledge-r1")]  # the Service names the pods
    js = next(m["spec"] for m in plan.create if m["kind"] == "Job")
    assert js["backoffLimit"] == 0 and js["template"]["spec"]["subdomain"] == "ft-knowledge-r1"
    assert js["template"]["metadata"]["labels"]["labrador.dev/attempt"] == "1"
    assert "--master-addr=ft-knowledge-r1-0.ft-knowledge-r1" in js["template"]["spec"]["containers"][0]["command"]
    assert plan.status["phase"] == "Running" and plan.status["phases"][0]["state"] == "Running"

    rule = "Container main for pod ns/{} failed with exit code {} matching FailJob rule at index {}"
    preempted = failed("ft-knowledge-r1", "PodFailurePolicy", rule.format("ft-knowledge-r1-1-x", 143, 1))
    s = spec(runPolicy={"backoffLimit": 1})
    kids = Children(jobs={"ft-knowledge": crash, "ft-knowledge-r1": preempted})
    again = run(s, kids).create
    assert [m["metadata"]["name"] for m in again] == ["ft-knowledge-r2", "ft-knowledge-r2"]
    # a second crash with backoffLimit 1: spent
    kids.jobs["ft-knowledge-r2"] = failed("ft-knowledge-r2", "BackoffLimitExceeded")
    spent = run(s, kids)
    assert [m for m in spent.create] == [] and spent.status["phase"] == "Failed"
    assert conds(spent)["Failed"] == ("True", "BackoffLimitExceeded")
    user = failed("ft-knowledge", "PodFailurePolicy", rule.format("ft-knowledge-0-x", 2, 0))
    final = run(spec(), Children(jobs={"ft-knowledge": user}))
    assert [m for m in final.create] == [] and conds(final)["Failed"] == (
        "True",
        "UserError",
    )
    # a second attempt that completes finishes the phase; the next phase starts from it
    done = run(spec(), Children(jobs={"ft-knowledge": crash, "ft-knowledge-r1": job("ft-knowledge-r1", **DONE)}))
    assert {m["metadata"]["name"] for m in done.create if m["kind"] == "Job"} == {"ft-skills"}
    assert done.status["restarts"] == 1
