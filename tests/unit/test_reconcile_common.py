"""What the kinds' decisions share (reconcile/common.py), and what the reconcile layer may import."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from labrador_operator.api import finetune as api_finetune
from labrador_operator.api import sdg as api_sdg
from labrador_operator.api.common import RunPolicy
from labrador_operator.reconcile import common
from labrador_operator.reconcile.observe import JobState

RECONCILE = Path(common.__file__).parent


def test_shared_spellings_are_each_kinds_own() -> None:
    """common.py spells the conditions and reasons both Job-running kinds report; each kind's API owns them."""
    for api in (api_finetune, api_sdg):
        assert (api.ConditionType.RUNNING, api.ConditionType.READY) == (common.RUNNING, common.READY)
        assert (api.ConditionType.FAILED, api.ConditionType.SUSPENDED) == (common.FAILED, common.SUSPENDED)
        assert (api.Reason.SUSPENDED, api.Reason.SUCCEEDED, api.Reason.STARTING) == (
            common.SUSPENDED,
            common.SUCCEEDED,
            common.STARTING,
        )
        assert (api.Reason.DEADLINE_EXCEEDED, api.Reason.USER_ERROR, api.Reason.BACKOFF_LIMIT_EXCEEDED) == (
            common.DEADLINE_EXCEEDED,
            common.USER_ERROR,
            common.BACKOFF_LIMIT_EXCEEDED,
        )
        assert {api.Phase.SUCCEEDED, api.Phase.FAILED} == set(common.TERMINAL)


@pytest.mark.parametrize(
    ("status", "done"),
    [
        pytest.param({}, False, id="new"),
        pytest.param({"phase": "Running"}, False, id="running"),
        pytest.param({"phase": "Succeeded"}, True, id="succeeded"),
        pytest.param({"phase": "Failed", "conditions": [{"reason": "BackoffLimitExceeded"}]}, True, id="failed"),
        pytest.param({"phase": "Failed", "conditions": [{"reason": "InvalidSpec"}]}, False, id="invalid-spec-reruns"),
    ],
)
def test_finished(status: dict[str, Any], done: bool) -> None:
    assert common.finished(status, 1) is done


def job(name: str = "j", **kw: Any) -> JobState:
    return JobState(name=name, role="r", completions=1, **kw)


@pytest.mark.parametrize(
    ("policy", "state", "patch"),
    [
        pytest.param({"suspend": True}, {"active": 1}, True, id="suspend-a-running-job"),
        pytest.param({"suspend": True}, {"suspend_requested": True}, None, id="already-suspended"),
        pytest.param({"suspend": True}, {"complete": True}, None, id="finished-jobs-are-left-alone"),
        pytest.param({}, {"suspend_requested": True, "suspended": True}, False, id="resume"),
        pytest.param({"queueName": "q"}, {"suspend_requested": True}, None, id="kueue-owns-the-flag"),
        pytest.param({"suspend": True, "queueName": "q"}, {"active": 1}, True, id="suspend-under-kueue"),
        pytest.param({}, {"active": 1}, None, id="running-stays-running"),
    ],
)
def test_suspension_patches(policy: dict[str, Any], state: dict[str, Any], patch: bool | None) -> None:
    got = common.suspension_patches([job(**state)], RunPolicy.model_validate(policy))
    assert got == ([] if patch is None else [("Job", "j", {"spec": {"suspend": patch}})])


@pytest.mark.parametrize(
    ("state", "reason", "words"),
    [
        pytest.param(
            {"failure_reason": "DeadlineExceeded"}, "DeadlineExceeded", "activeDeadlineSeconds", id="deadline"
        ),
        pytest.param({"failure_reason": "PodFailurePolicy"}, "UserError", "user-error code", id="user-error"),
        pytest.param(
            {"failure_reason": "BackoffLimitExceeded", "failed": 4}, "BackoffLimitExceeded", "4 times", id="bo"
        ),
        pytest.param({"failure_reason": "Evicted", "failure_message": "node gone"}, "Evicted", "node gone", id="other"),
        pytest.param({}, "JobFailed", "Job j failed", id="no-reason"),
    ],
)
def test_job_failure(state: dict[str, Any], reason: str, words: str) -> None:
    got_reason, message = common.job_failure(job(failed_terminal=True, **state))
    assert got_reason == reason and words in message


def test_missing_and_conditions() -> None:
    manifest = {"kind": "Job", "metadata": {"name": "j"}}
    assert common.missing(manifest, {"other"}) == [manifest]
    assert common.missing(manifest, {"j"}) == [] and common.missing(None, set()) == []
    cond = common.Conditions(7, [{"type": "Running", "status": "False", "lastTransitionTime": "OLD"}])
    failed = common.failed_conditions(cond, "UserError", "exit 2")
    assert [(c["type"], c["status"], c["reason"]) for c in failed] == [
        ("Running", "False", "UserError"),
        ("Ready", "False", "UserError"),
        ("Failed", "True", "UserError"),
    ]
    assert failed[0]["lastTransitionTime"] == "OLD" and failed[1]["lastTransitionTime"] != "OLD"
    assert {c["observedGeneration"] for c in failed} == {7}
    problem = common.running_condition(
        cond,
        problem=("OOMKilled", "raise memory"),
        running=True,
        reason="R",
        message="m",
        starting="s",
        problem_prefix="p: ",
    )
    assert (problem["status"], problem["reason"], problem["message"]) == ("False", "OOMKilled", "p: raise memory")
    up = common.running_condition(cond, problem=None, running=True, reason="R", message="m", starting="s")
    starting = common.running_condition(cond, problem=None, running=False, reason="R", message="m", starting="s")
    assert (up["status"], up["reason"], starting["status"], starting["reason"]) == ("True", "R", "False", "Starting")
    outcome = common.Outcome("Running", failed, {"x": 1})
    assert outcome.status(7) == {"phase": "Running", "observedGeneration": 7, "conditions": failed, "x": 1}


def test_the_reconcile_layer_imports_no_kopf_kubernetes_or_handlers() -> None:
    """Pure decisions: importing every reconcile module (and what they import) loads none of these."""
    modules = sorted(p.stem for p in RECONCILE.glob("*.py") if p.stem != "__init__")
    code = (
        "import sys\n"
        + "".join(f"import labrador_operator.reconcile.{m}\n" for m in modules)
        + "print('\\n'.join(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('kopf', 'kubernetes') or m.startswith('labrador_operator.handlers'))))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # the modules this test imported
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == ""


def test_no_kind_imports_another_kinds_private_helpers() -> None:
    """Shared pieces live in common.py: no ``from labrador_operator.reconcile.x import _y`` between the modules."""
    private = []
    for path in RECONCILE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("labrador_operator.reconcile"):
                private += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert private == []


@pytest.mark.parametrize("kind", ["finetune", "sdg", "taxonomy"])
def test_each_kinds_decisions_are_named_for_it(kind: str) -> None:
    """A grep for the kind finds its decision functions: every public function but plan and the data helpers is
    ``<kind>_...``."""
    tree = ast.parse((RECONCILE / f"{kind}.py").read_text())
    names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")]
    others = {"plan", "explicit_data", "data_from_sdg"}
    assert [n for n in names if n not in others and not n.startswith(f"{kind}_")] == []
    assert len([n for n in names if n.startswith(f"{kind}_")]) >= 4
