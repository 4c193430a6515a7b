"""Argo CD's health check (Lua, run here with Lua 5.1 like Argo CD's gopher-lua) on real status objects."""

from __future__ import annotations

import copy
from typing import Any

from lupa import lua51

from tests.conftest import ROOT
from tests.integration.conftest import Kube, one_phase_job, wait_for
from tests.integration.test_pipeline import taxonomy

SCRIPT = (ROOT / "charts" / "labrador" / "argocd" / "health.lua").read_text()


def health(obj: dict[str, Any]) -> tuple[str, str]:
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)

    def table(value: Any) -> Any:
        if isinstance(value, dict):
            return lua.table_from({k: table(v) for k, v in value.items()})
        if isinstance(value, list):
            return lua.table_from([table(v) for v in value])
        return value

    lua.globals().obj = table(obj)
    result = lua.execute(SCRIPT)
    return result["status"], result["message"]


ft = one_phase_job


def test_health_of_real_objects(installed: Kube, operator: Any, namespace: str, workspace: str) -> None:
    bad = {
        "valid": False,
        "error_count": 1,
        "errors": [{"path": "knowledge/a/qna.yaml", "line": 3, "message": "version: must be 3"}],
    }
    installed.apply(
        [
            ft("running", {"labrador.dev/kwok-hold": "true"}),
            ft("done"),
            ft("broken", {"labrador.dev/kwok-exit-code": "2"}),
            ft("paused", suspend=True),
            taxonomy("invalid", bad, exit_code=1),
        ],
        namespace,
    )
    # no status yet
    fresh = copy.deepcopy(ft("fresh"))
    assert health(fresh)[0] == "Progressing"

    def get(kind: str, name: str, phase: str) -> dict[str, Any]:
        return wait_for(
            lambda: (o := installed.get(kind, name, namespace)).get("status", {}).get("phase") == phase and o,
            timeout=60,
            what=f"{name} {phase}",
        )

    running = get("ftj", "running", "Running")
    assert health(running) == ("Progressing", "Running")
    assert health(get("ftj", "done", "Succeeded"))[0] == "Healthy"
    status, message = health(get("ftj", "broken", "Failed"))
    assert status == "Degraded" and message.startswith("UserError: ")
    assert health(get("ftj", "paused", "Suspended")) == ("Suspended", "runPolicy.suspend is true")
    status, message = health(get("taxonomy", "invalid", "Invalid"))
    assert status == "Degraded" and "knowledge/a/qna.yaml:3" in message
    # a spec change the operator has not observed yet
    stale = copy.deepcopy(running)
    stale["metadata"]["generation"] = running["metadata"]["generation"] + 1
    assert health(stale)[0] == "Progressing" and "generation" in health(stale)[1]


def test_health_of_a_served_job() -> None:
    """A succeeded FineTuneJob with spec.serve, its status as the operator's own decision makes it: Progressing
    while the server loads, Healthy once it answers, Suspended at replicas 0, Degraded when it cannot serve."""
    from labrador_operator.reconcile.observe import Children, PodState
    from tests.unit.test_serving import _deployment, _finished

    def obj(plan: Any) -> dict[str, Any]:
        return {"metadata": {"generation": 3}, "status": {**plan.status, "phase": "Succeeded"}}

    starting = health(obj(_finished({}, Children())))
    assert starting[0] == "Progressing" and starting[1].startswith("ServerStarting: waiting for ft-serve"), starting
    ready = Children(deployments={"ft-serve": _deployment({}, ready=1)}, services={"ft-serve"})
    assert health(obj(_finished({}, ready)))[0] == "Healthy"
    assert health(obj(_finished({"replicas": 0}, ready)))[0] == "Suspended"
    oom = PodState(name="ft-serve-x", job="", index=0, phase="Running", ip=None, problem="OOMKilled",
                   problem_message="killed", role="serve")  # fmt: skip
    crashed = Children(deployments={"ft-serve": _deployment({})}, services={"ft-serve"}, pods={oom.name: oom})
    assert health(obj(_finished({}, crashed))) == ("Degraded", "OOMKilled: model server ft-serve: killed")
    rejected = health(obj(_finished({}, Children(), promoted=False)))
    assert rejected == ("Degraded", "NotPromoted: the quality gate rejected the model")
