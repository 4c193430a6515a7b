"""The quality gate (spec.evaluation.gate): the FineTuneJob ends Succeeded either way, with a Promoted condition that
says whether the tuned model passed, every measured number in its message; a threshold on a measure nobody measured
fails."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from labrador_operator.api.finetune import FineTuneJobSpec, Gate
from labrador_operator.reconcile import finetune as decide
from labrador_operator.reconcile.observe import Children, PodState
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


def _evaluated(result: dict[str, Any], gate: dict[str, Any] | None) -> Any:
    s: FineTuneJobSpec = spec(evaluation={"enabled": True, **({"gate": gate} if gate else {})})
    kids = Children(
        jobs={"ft-knowledge": job("ft-knowledge", **DONE), "ft-skills": job("ft-skills", **DONE),
              "ft-evaluate": job("ft-evaluate", **{**DONE, "succeeded": 1, "completions": 1})},
        config_maps={"ft-config"},
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
