"""The two JSON configs the operator writes for ``labrador-trainer evaluate`` (evaluate.json, <phase>-select.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Wire(BaseModel):
    # extra="ignore": a newer operator may add fields; camelCase names as the operator writes them
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Evaluation(_Wire):
    enabled: bool = True
    checkpoint_selection: Literal["final", "best"] = Field("final", alias="checkpointSelection")
    max_questions: int = Field(200, ge=1, alias="maxQuestions")
    # held-out items both models answer (greedy) for the report even without a judge; 0: none
    examples: int = Field(3, ge=0, le=1000)


class _Judge(_Wire):
    # mt-bench: 1-10 ("Rating: [[N]]"); dk-bench: 1-5 ("Score: N"), see evaluate/judge.py
    style: Literal["mt-bench", "dk-bench"] = "mt-bench"


class VllmJudge(_Judge):
    kind: Literal["vllm"]
    model: str
    vllm: dict[str, Any] = {}


class EndpointJudge(_Judge):
    kind: Literal["endpoint"]
    url: str
    model: str
    max_concurrency: int = Field(8, ge=1, alias="maxConcurrency")


class Inputs(_Wire):
    """What both configs share: the evaluation settings and its input files (absolute paths; None = absent)."""

    evaluation: Evaluation = Evaluation()
    multiple_choice: str | None = Field(None, alias="multipleChoice")
    held_out: str | None = Field(None, alias="heldOut")
    general: list[str] = []
    judge: VllmJudge | EndpointJudge | None = Field(None, discriminator="kind")

    def judge_dict(self) -> dict[str, Any] | None:
        """The judge as `labrador_trainer.sdg.llm.make_generator` takes it (the operator's wire form)."""
        return self.judge.model_dump(by_alias=True) if self.judge else None


class EvaluateConfig(Inputs):
    job: dict[str, Any] = {}
    base_model: str = Field(alias="baseModel", min_length=1)
    tuned_model: str = Field(alias="tunedModel", min_length=1)
    data: dict[str, str] = {}
    phase_dir: str | None = Field(None, alias="phaseDir")
    report_dir: str = Field(alias="reportDir", min_length=1)


class SelectConfig(Inputs):
    job: dict[str, Any] = {}
    checkpoints_dir: str = Field(alias="checkpointsDir", min_length=1)
    selected_dir: str = Field(alias="selectedDir", min_length=1)
    export_dir: str | None = Field(None, alias="exportDir")
    data: str | None = None

    @property
    def phase(self) -> str:
        name = self.job.get("phase")
        if not isinstance(name, str) or not name:
            raise ValueError("select config: job.phase (the phase whose checkpoints to score) is missing")
        return name


class ConfigError(ValueError):
    """A config the user (or operator) must fix: exit 2."""


def load(path: str | Path, *, select: bool) -> EvaluateConfig | SelectConfig:
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"config file not found: {path}") from e
    except json.JSONDecodeError as e:
        raise ConfigError(f"config {path} is not valid JSON: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path}: expected a JSON object, got {type(raw).__name__}")
    cls = SelectConfig if select else EvaluateConfig
    try:
        cfg = cls.model_validate(raw)
        if isinstance(cfg, SelectConfig):
            _ = cfg.phase
    except ValidationError as e:
        errors = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()[:10])
        raise ConfigError(f"config {path} ({'select' if select else 'evaluate'}): {errors}") from e
    except ValueError as e:
        raise ConfigError(str(e)) from e
    return cfg
