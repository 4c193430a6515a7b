"""The controller runtime (controller/runtime.py, controller/client.py): what the operator does with each answer
of the API server — a child that exists already (409), a namespace being deleted (403 NamespaceTerminating), a
refusal it cannot fix (403 Forbidden, 422 Invalid) — and the status overlay that keeps a reconcile from undoing its
own last write. The API client runs for real against a loopback server (tests/unit/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from labrador_operator.controller.runtime import RECONCILE_ERROR, RECONCILE_ERROR_AFTER, api_error
from tests.unit.conftest import LoopbackAPI, api_status, runtime_for

JOB = {
    "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "n"},
    "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}},
}  # fmt: skip


def _body(name: str = "ft", phase: str | None = "Running", **status: Any) -> dict[str, Any]:
    st = {"phase": phase, **status} if phase else dict(status)
    return {"metadata": {"namespace": "n", "name": name, "uid": "u", "generation": 1}, "spec": {}, "status": st}


@pytest.mark.parametrize(
    ("code", "reason", "message", "created"),
    [
        (201, None, None, True),
        (409, "AlreadyExists", 'jobs.batch "j" already exists', False),
        (
            403,
            "Forbidden",
            "unable to create new content in namespace n because it is being terminated (NamespaceTerminating)",
            False,
        ),
        (404, "NotFound", 'namespaces "n" not found', False),
    ],
    ids=["created", "409-exists", "403-namespace-terminating", "404-namespace-gone"],
)
def test_a_create_that_needs_nothing_more_is_no_error(
    loopback_api: LoopbackAPI, code: int, reason: str | None, message: str | None, created: bool
) -> None:
    loopback_api.answer = lambda m, p, b: (code, api_status(code, reason, message) if reason else b)
    client = loopback_api.client()
    assert client.create(JOB) is created
    assert [(r.method, r.path) for r in loopback_api.requests] == [("POST", "/apis/batch/v1/namespaces/n/jobs")]
    # made or found: the watch may not have brought it yet, the next reconcile does not create it again
    assert client.recently_created("Job", "n", "j") is (code in (201, 409))


@pytest.mark.parametrize(
    ("code", "reason", "message", "said"),
    [
        (
            403,
            "Forbidden",
            'jobs.batch is forbidden: User "system:serviceaccount:x:labrador" cannot create resource "jobs"',
            "Forbidden",
        ),
        (422, "Invalid", 'Job.batch "j" is invalid: spec.template.spec.containers[0].image: Required value', "Invalid"),
        (403, "Forbidden", 'jobs.batch "j" is forbidden: exceeded quota: small, requested: limits.cpu=2', "Forbidden"),
    ],
    ids=["403-rbac", "422-invalid", "403-quota"],
)
def test_a_refused_create_raises_with_the_api_servers_words(
    loopback_api: LoopbackAPI, code: int, reason: str, message: str, said: str
) -> None:
    loopback_api.answer = lambda m, p, b: (code, api_status(code, reason, message))
    with pytest.raises(ApiException) as e:
        loopback_api.client().create(JOB)
    got_reason, got_message = api_error(e.value)
    assert got_reason == said and message in got_message and str(code) in got_message


def test_status_and_child_patches_of_deleted_objects_are_no_error(loopback_api: LoopbackAPI) -> None:
    loopback_api.answer = lambda m, p, b: (404, api_status(404, "NotFound", "gone"))
    client = loopback_api.client()
    client.patch_status("finetunejobs", "n", "ft", {"phase": "Running"})
    client.patch_child("Job", "n", "j", {"spec": {"suspend": False}})
    assert [r.method for r in loopback_api.requests] == ["PATCH", "PATCH"]
    assert loopback_api.requests[0].path == "/apis/labrador.dev/v1alpha1/namespaces/n/finetunejobs/ft/status"
    assert loopback_api.requests[0].body == {"status": {"phase": "Running"}}


def test_a_reconcile_failing_again_and_again_says_why_on_the_resource(
    loopback_api: LoopbackAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the RECONCILE_ERROR_AFTER-th failure in a row: a ReconcileError condition with the API server's message
    (once per distinct message, not per attempt); the next success takes it off."""
    posted: list[dict[str, Any]] = []
    monkeypatch.setattr("kopf.event", lambda body, **kw: posted.append(kw))  # kopf's Event poster needs its loop
    rt = runtime_for(loopback_api)
    rt.cache.observe_parent("finetunejobs", None, _body())
    refusal = ApiException(status=422, reason="Unprocessable Entity")
    refusal.body = '{"message": "Job.batch \\"ft-knowledge\\" is invalid: spec.template: Required value"}'
    key = ("finetunejobs", "n", "ft")
    for failures in range(1, RECONCILE_ERROR_AFTER + 3):
        rt.reconcile_failed(key, failures, refusal)
    patches = [r.body["status"] for r in loopback_api.requests]
    assert len(patches) == 1, patches  # said once; the attempt count alone is not worth a write
    (cond,) = [c for c in patches[0]["conditions"] if c["type"] == RECONCILE_ERROR]
    assert cond["status"] == "True" and cond["reason"] == "Invalid"
    assert 'ft-knowledge\\" is invalid' not in cond["message"] and "spec.template: Required value" in cond["message"]
    assert [p["reason"] for p in posted] == [RECONCILE_ERROR]
    rt.reconcile_recovered(key)
    assert loopback_api.requests[-1].body == {"status": {"conditions": []}}


def test_written_status_is_laid_over_older_bodies_until_an_event_shows_it(loopback_api: LoopbackAPI) -> None:
    rt = runtime_for(loopback_api)
    rt.write_status("finetunejobs", "a", "done", {"phase": "Succeeded", "completionTime": "t1"})
    older = _body("done", "Running")
    older["metadata"]["namespace"] = "a"
    assert rt.current_status("finetunejobs", older)["phase"] == "Succeeded"
    rt.overlay.settled("finetunejobs", older)  # predates our write: the overlay stays
    lagging = {**older, "status": {"phase": "Succeeded"}}  # the phase, but not yet our completionTime
    rt.overlay.settled("finetunejobs", lagging)
    assert len(rt.overlay) == 1
    caught_up = {**older, "status": {"phase": "Succeeded", "completionTime": "t1"}}
    rt.overlay.settled("finetunejobs", caught_up)
    assert len(rt.overlay) == 0
    assert rt.current_status("finetunejobs", caught_up) == caught_up["status"]


def test_a_progress_sample_never_lands_on_a_finished_job(loopback_api: LoopbackAPI) -> None:
    rt = runtime_for(loopback_api)
    body = _body("j", "Running", progress={"percent": 10})
    rt.cache.observe_parent("finetunejobs", None, body)
    rt.write_progress("finetunejobs", "n", "j", lambda now: {"percent": 40, "updated": "t"})
    assert [r.body for r in loopback_api.requests] == [{"status": {"progress": {"percent": 40, "updated": "t"}}}]
    rt.overlay.forget("finetunejobs", "n", "j")
    # a reconcile finished it meanwhile
    rt.cache.observe_parent("finetunejobs", None, _body("j", "Succeeded", progress={"percent": 100, "etaSeconds": 0}))
    rt.write_progress("finetunejobs", "n", "j", lambda now: {"percent": 40, "updated": "t2"})
    assert len(loopback_api.requests) == 1
