"""The run configs of ``generate`` and ``mix`` (the JSON the operator writes into the Job's ConfigMap)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class ConfigError(ValueError):
    """A config file that cannot be used (exit code 2)."""


class GenerateConfig(_Model):
    taxonomy: str = Field(description="Directory of a `taxonomy sync` snapshot (taxonomy.json, taxonomy/, documents/).")
    teacher: dict[str, Any] = Field(description='{"kind": "vllm", "model", "vllm"} or {"kind": "endpoint", ...}')
    output_dir: str
    pipeline: Literal["full", "simple"] = "full"
    prompts_dir: str | None = None
    samples_per_seed_example: int = Field(default=30, ge=1)
    max_samples: int | None = Field(default=None, ge=1)
    max_new_tokens: int | None = Field(default=None, ge=1, description="cap on every request's output tokens")
    shards: int = Field(default=1, ge=1)
    seed: int = 42
    chunk_tokens: int = Field(default=500, ge=32, le=8192)
    taxonomy_revision: str | None = None


class ReplayEntry(_Model):
    path: str
    sampling_size: float = Field(default=1.0, gt=0)


class MixingConfig(_Model):
    max_skill_samples_per_leaf: int = Field(default=10_000, ge=1)
    distractor_documents: int = Field(default=3, ge=0)
    multiple_choice_per_leaf: int = Field(default=10, ge=0)
    replay: list[ReplayEntry] | None = None


class MixOutputs(_Model):
    knowledge: str
    skills: str
    multiple_choice: str
    held_out: str


class MixConfig(_Model):
    input_dir: str
    outputs: MixOutputs
    mixing: MixingConfig = MixingConfig()
    seed: int = 42
    taxonomy: str | None = None
    system_prompt: str = "You are a helpful, knowledgeable assistant."


def load(model: type[_Model], path: str | Path) -> Any:
    try:
        data = json.loads(Path(path).read_text())
        return model.model_validate(data)
    except FileNotFoundError as exc:
        raise ConfigError(f"config {path} not found") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config {path}: not JSON: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"config {path}: {problems}") from exc
