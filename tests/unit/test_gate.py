"""The quality gate (spec.evaluation.gate): the FineTuneJob ends Succeeded either way, with a Promoted condition that
says whether the tuned model passed, every measured number in its message; a threshold on a measure nobody measured
fails."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from labrador_operator.api.finetune import FineTuneJobSpec, Gate
from labrador_operator.reconcile import finetune as decide
from labrador_operator.reconcile.observe import Children, JobState, PodState
from labrador_operator.reconcile.results import EvaluateResult
from tests.unit.test_reconcile_finetune import DONE, job, run, spec

MEASURED = {
    "report": "models/ns/ft/evaluation.json",
    "base_score": 0.40,
    "tuned_score": 0.55,
    "forgetting_delta": 0.03,
    "measures": {
        "held_out_loss": {"base": 2.40, "tuned": 1.90},
        "mcq_accuracy": {"base": 0.25, "tuned": 0.45},
        "judge_rating": None,
    },
}


@pytest.mark.parametrize(
    ("gate", "promoted", "said"),
    [
        (None, True, ["no spec.evaluation.gate"]),
        ({}, True, ["sets no threshold"]),
        ({"minHeldOutLossImprovement": 0.3}, True,
         ["held-out loss 2.4 -> 1.9 (improvement +0.5, needs >= 0.3): passed"]),
        ({"minHeldOutLossImprovement": 0.6}, False,
         ["held-out loss 2.4 -> 1.9 (improvement +0.5, needs >= 0.6): failed"]),
        ({"minMcqAccuracyGain": 0.1}, True, ["MCQ accuracy 0.25 -> 0.45 (gain +0.2, needs >= 0.1): passed"]),
        ({"minMcqAccuracyGain": 0.1, "maxForgetting": 0.01}, False,
         ["MCQ accuracy", "passed", "forgetting +0.03 (needs <= 0.01): failed"]),
        ({"minScoreGain": 0.1}, True, ["aggregate score 0.4 -> 0.55 (gain +0.15, needs >= 0.1): passed"]),
        ({"minJudgeRatingGain": 0.5}, False, ["judge rating: not measured (needs gain >= 0.5): failed"]),
        ({"minHeldOutLossImprovement": 0.0, "minMcqAccuracyGain": 0.0, "maxForgetting": 0.05}, True,
         ["held-out loss", "MCQ accuracy", "forgetting +0.03 (needs <= 0.05): passed"]),
    ],
)  # fmt: skip
def test_the_gate_decides_from_the_measured_numbers(
    gate: dict[str, Any] | None, promoted: bool, said: list[str]
) -> None:
    g = Gate.model_validate(gate) if gate is not None else None
    verdict = decide.finetune_gate(g, EvaluateResult.model_validate(MEASURED))
    assert verdict.promoted is promoted
    assert verdict.reason == ("NoGate" if gate is None else "GatePassed" if promoted else "GateFailed")
    assert verdict.message.startswith(("promoted", "no spec", "the gate") if promoted else "not promoted")
    for part in said:
        assert part in verdict.message, verdict.message


def test_a_result_without_measures_fails_every_threshold_on_them() -> None:
    bare = EvaluateResult.model_validate({"report": "r.json"})
    verdict = decide.finetune_gate(Gate(max_forgetting=1.0, min_score_gain=-1.0), bare)
    assert not verdict.promoted
    assert "aggregate score: not measured" in verdict.message and "forgetting: not measured" in verdict.message


def test_a_gate_needs_the_evaluation() -> None:
    with pytest.raises(ValidationError, match=r"gate needs spec\.evaluation\.enabled"):
        spec(evaluation={"enabled": False, "gate": {"maxForgetting": 0.1}})


def _evaluated(result: dict[str, Any], gate: dict[str, Any] | None, **spec_fields: Any) -> Any:
    """The reconcile that ends a job whose evaluation reported ``result`` (``spec_fields``: more of its spec)."""
    s: FineTuneJobSpec = spec(evaluation={"enabled": True, **({"gate": gate} if gate else {})}, **spec_fields)
    kids = Children(
        jobs={"ft-knowledge": job("ft-knowledge", **DONE), "ft-skills": job("ft-skills", **DONE),
              "ft-evaluate": job("ft-evaluate", **{**DONE, "succeeded": 1, "completions": 1})},
        services={"ft-knowledge", "ft-skills"},
    )  # fmt: skip
    kids.pods["e0"] = PodState(name="e0", job="ft-evaluate", index=0, phase="Succeeded", ip=None, exit_code=0,
                               result=result)  # fmt: skip
    return run(s, kids)


def test_a_succeeded_job_says_promoted_or_not_with_its_numbers() -> None:
    good = _evaluated(MEASURED, {"minHeldOutLossImprovement": 0.1, "maxForgetting": 0.1})
    assert good.status["phase"] == "Succeeded"
    promoted = next(c for c in good.status["conditions"] if c["type"] == "Promoted")
    assert (promoted["status"], promoted["reason"]) == ("True", "GatePassed")
    assert "held-out loss 2.4 -> 1.9" in promoted["message"]
    assert good.status["outputs"]["evaluation"]["heldOutLoss"] == {"base": 2.4, "tuned": 1.9}
    assert good.status["outputs"]["evaluation"]["mcqAccuracy"] == {"base": 0.25, "tuned": 0.45}
    assert "judgeRating" not in good.status["outputs"]["evaluation"]
    bad = _evaluated({**MEASURED, "forgetting_delta": 0.9}, {"maxForgetting": 0.1})
    assert bad.status["phase"] == "Succeeded"  # the job did its work; the model is just not promoted
    rejected = next(c for c in bad.status["conditions"] if c["type"] == "Promoted")
    assert (rejected["status"], rejected["reason"]) == ("False", "GateFailed")
    assert rejected["message"] == "not promoted: forgetting +0.9 (needs <= 0.1): failed"
    ungated = _evaluated(MEASURED, None)
    assert next(c for c in ungated.status["conditions"] if c["type"] == "Promoted")["status"] == "True"


def _exporting(gate: dict[str, Any], forgetting: float, export: JobState | None = None, result: Any = None) -> Any:
    s: FineTuneJobSpec = spec(
        evaluation={"enabled": True, "gate": gate},
        output={"uri": "s3://models/team/ft", "secretRef": {"name": "s3-push"}, "endpoint": "http://minio:9000"},
    )
    jobs = {"ft-knowledge": job("ft-knowledge", **DONE), "ft-skills": job("ft-skills", **DONE),
            "ft-evaluate": job("ft-evaluate", **{**DONE, "succeeded": 1, "completions": 1})}  # fmt: skip
    if export is not None:
        jobs["ft-export"] = export
    kids = Children(jobs=jobs, services={"ft-knowledge", "ft-skills"})
    kids.pods["e0"] = PodState(name="e0", job="ft-evaluate", index=0, phase="Succeeded", ip=None, exit_code=0,
                               result={**MEASURED, "forgetting_delta": forgetting})  # fmt: skip
    if result is not None:
        kids.pods["x0"] = PodState(name="x0", job="ft-export", index=0, phase="Succeeded", ip=None, exit_code=0,
                                   result=result)  # fmt: skip
    return run(s, kids)


def test_a_promoted_model_is_exported_before_the_job_succeeds() -> None:
    p = _exporting({"maxForgetting": 0.1}, 0.02)
    assert p.status["phase"] == "Exporting"
    (export,) = [m for m in p.create if m["metadata"]["name"] == "ft-export"]
    main = export["spec"]["template"]["spec"]["containers"][0]
    assert main["command"][:3] == ["labrador-trainer", "model", "export"]
    assert main["command"][3:7] == ["--src", "/workspace/models/ns/ft", "--uri", "s3://models/team/ft"]
    assert "--endpoint" in main["command"] and main["envFrom"] == [{"secretRef": {"name": "s3-push"}}]
    assert "nvidia.com/gpu" not in main["resources"]["limits"]  # copying files needs no GPU
    running = _exporting({"maxForgetting": 0.1}, 0.02, job("ft-export", completions=1, active=1))
    assert running.status["phase"] == "Exporting" and running.create == []
    digest = "sha256:" + "a" * 64
    done = _exporting({"maxForgetting": 0.1}, 0.02, job("ft-export", **{**DONE, "succeeded": 1, "completions": 1}),
                      {"status": "Succeeded", "uri": "s3://models/team/ft", "digest": digest, "files": 3,
                       "bytes": 1024})  # fmt: skip
    assert done.status["phase"] == "Succeeded"
    assert done.status["outputs"]["exported"] == {"uri": "s3://models/team/ft", "digest": digest, "files": 3,
                                                  "bytes": 1024}  # fmt: skip
    ready = next(c for c in done.status["conditions"] if c["type"] == "Ready")
    assert ready["message"] == "model at models/ns/ft, exported to s3://models/team/ft"


def test_a_rejected_model_is_never_exported() -> None:
    p = _exporting({"maxForgetting": 0.1}, 0.9)
    assert p.status["phase"] == "Succeeded" and p.create == []
    assert "exported" not in p.status["outputs"]
    ready = next(c for c in p.status["conditions"] if c["type"] == "Ready")
    assert ready["message"].endswith("not exported to s3://models/team/ft: not promoted")


def test_a_failed_export_fails_the_job_with_its_reason() -> None:
    failed = job("ft-export", completions=1, failed=1, failed_terminal=True, failure_reason="BackoffLimitExceeded",
                 completion_time="2026-01-01T00:20:00Z")  # fmt: skip
    p = _exporting({"maxForgetting": 0.1}, 0.02, failed)
    assert p.status["phase"] == "Failed"
    cond = next(c for c in p.status["conditions"] if c["type"] == "Failed")
    assert cond["status"] == "True"


def test_an_oci_export_gets_only_the_registry_login_file() -> None:
    from labrador_operator.builders import finetune as b
    from tests.unit.test_reconcile_finetune import OWNER, SETTINGS

    s = spec(output={"uri": "oci://registry.example:5000/team/ft:v1", "secretRef": {"name": "push-login"}})
    pod = b.build_export_job(OWNER, s, SETTINGS)["spec"]["template"]["spec"]
    main = pod["containers"][0]
    assert main["command"][-2:] == ["--registry-config", "/var/run/secrets/labrador/registry/config.json"]
    assert "envFrom" not in main  # the Secret is not env: only its .dockerconfigjson, as a read-only file
    (vol,) = [v for v in pod["volumes"] if v["name"] == "export-registry-config"]
    assert vol["secret"] == {"secretName": "push-login", "defaultMode": 0o400,
                             "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}  # fmt: skip
    assert {"name": "export-registry-config", "mountPath": "/var/run/secrets/labrador/registry", "readOnly": True} in (
        main["volumeMounts"]
    )
