"""SyntheticDataJob: a teacher model expands a Taxonomy's seed examples into training data."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from labrador_operator.api.common import (
    IMMUTABLE,
    REL_PATH_MESSAGE,
    REL_PATH_RULE,
    ApiModel,
    Condition,
    EndpointSource,
    LocalObjectReference,
    ModelSource,
    Resources,
    RunPolicy,
    StatusModel,
    Usage,
    Workspace,
    cel,
    object_field,
    validations,
)

KIND = "SyntheticDataJob"
PLURAL = "syntheticdatajobs"
SHORT_NAMES = ["sdg", "sdj"]


class Phase(StrEnum):
    PENDING = "Pending"
    WAITING = "Waiting"
    RUNNING = "Running"
    MIXING = "Mixing"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"


class ConditionType(StrEnum):
    TAXONOMY_READY = "TaxonomyReady"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    READY = "Ready"  # outputs are available
    FAILED = "Failed"


class Reason(StrEnum):
    WAITING_FOR_TAXONOMY = "WaitingForTaxonomy"
    TAXONOMY_NOT_FOUND = "TaxonomyNotFound"
    TAXONOMY_INVALID = "TaxonomyInvalid"
    TAXONOMY_PINNED = "TaxonomyPinned"
    GENERATING = "Generating"
    STARTING = "Starting"  # the Job exists, its pods are not running yet (no problem reported)
    MIXING = "Mixing"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    USER_ERROR = "UserError"


class VllmSettings(ApiModel):
    """How the in-pod vLLM engine serves the teacher."""

    tensor_parallel_size: int = Field(
        default=1, ge=1, le=16, description="GPUs one engine spans; must not exceed spec.resources.gpus."
    )
    max_model_len: int = Field(default=4096, ge=256, le=1_048_576, description="Context length in tokens.")
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0, lt=1, description="Fraction of GPU memory vLLM may use (weights and KV cache)."
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto",
        description=(
            "Weights dtype. auto: the model's own on GPUs; on CPUs bfloat16 only where the CPU has it natively "
            "(AVX512_BF16 or AMX), else float32. status.teacherDtype says what ran."
        ),
    )
    enforce_eager: bool = Field(
        default=False,
        description="Run the model eagerly: no graph compilation or capture. Starts minutes sooner (on CPU the "
        "first compile takes several minutes) at some cost in steady-state throughput; for small or short runs.",
    )


class Teacher(ApiModel):
    """The teacher: a model served by vLLM inside the job's pods, or an external endpoint. Exactly one."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "has(self.model) != has(self.endpoint)",
                "exactly one of spec.teacher.model or spec.teacher.endpoint must be set",
                reason="FieldValueInvalid",
            ),
            cel(
                "!has(self.vllm) || has(self.model)",
                "spec.teacher.vllm applies only to spec.teacher.model",
                field_path=".vllm",
            ),
        )
    }

    model: ModelSource | None = Field(default=None, description="Teacher weights, served by vLLM in each pod.")
    vllm: VllmSettings | None = Field(default=None, description="vLLM engine settings for spec.teacher.model.")
    endpoint: EndpointSource | None = Field(default=None, description="An external OpenAI-compatible endpoint.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Teacher:
        if (self.model is None) == (self.endpoint is None):
            raise ValueError("exactly one of spec.teacher.model or spec.teacher.endpoint must be set")
        return self


class ReplayDataset(ApiModel):
    """A dataset mixed into the skills phase to limit forgetting (InstructLab recipe entry)."""

    path: str = Field(
        description="JSONL file of messages, relative to the workspace.",
        min_length=1,
        max_length=1024,
        json_schema_extra=validations(cel(REL_PATH_RULE, REL_PATH_MESSAGE)),
    )
    sampling_size: float = Field(
        default=1.0,
        gt=0,
        le=10_000_000,
        description="Samples to take: a count when ≥ 1 (rounded down), a fraction of the dataset when < 1.",
    )


class Mixing(ApiModel):
    """How generated samples become the two training sets."""

    max_skill_samples_per_leaf: int = Field(
        default=10_000, ge=1, le=10_000_000, description="Cap on samples kept per skill leaf."
    )
    distractor_documents: int = Field(
        default=3,
        ge=0,
        le=20,
        description="Unrelated document chunks added to knowledge samples of the "
        "skills phase, so the model learns to find the relevant one.",
    )
    multiple_choice_per_leaf: int = Field(
        default=10, ge=0, le=1000, description="Multiple-choice questions per knowledge leaf for evaluation."
    )
    replay: list[ReplayDataset] | None = Field(
        default=None, max_length=32, description="Replay datasets mixed into the skills set."
    )


class SyntheticDataJobSpec(ApiModel):
    """What to generate, with which teacher, on what resources."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "!has(self.teacher.vllm) || self.teacher.vllm.tensorParallelSize <= "
                "(self.resources.gpus == 0 ? 1 : self.resources.gpus)",
                "spec.teacher.vllm.tensorParallelSize must not exceed spec.resources.gpus",
                field_path=".teacher.vllm.tensorParallelSize",
            ),
        )
    }

    taxonomy_ref: LocalObjectReference = Field(
        description="The Taxonomy to expand; the job waits until it is Ready and pins its revision.",
        json_schema_extra=validations(IMMUTABLE),
    )
    teacher: Teacher = Field(description="Teacher model or endpoint.", json_schema_extra=validations(IMMUTABLE))
    pipeline: Literal["full", "simple"] = Field(
        default="full",
        description="full: generate, judge (faithfulness, relevancy, question quality) and filter. "
        "simple: generate and parse only, for small teachers.",
    )
    prompts_config_map_ref: LocalObjectReference | None = Field(
        default=None, description="ConfigMap whose keys override the built-in prompt templates by file name."
    )
    samples_per_seed_example: int = Field(
        default=30,
        ge=1,
        le=10_000,
        description="Samples to generate per seed example (InstructLab's sdg_scale_factor).",
    )
    max_new_tokens: int | None = Field(
        default=None,
        ge=16,
        le=32_768,
        description=(
            "Cap on every request's output tokens (each prompt template's max_tokens is the default: 384 for "
            "knowledge Q&A, 256 for contexts and answers). A lower cap makes a CPU teacher finish sooner."
        ),
    )
    max_samples: int | None = Field(
        default=None, ge=1, le=100_000_000, description="Stop generating after this many kept samples in total."
    )
    parallelism: int = Field(
        default=1, ge=1, le=256, description="Pods working at once; the leaves are sharded deterministically."
    )
    mixing: Mixing = object_field(Mixing, "Mixing recipe.")
    seed: int = Field(default=42, ge=0, le=2**31 - 1, description="Sampling seed.")
    run_policy: RunPolicy = object_field(RunPolicy, "Retries, deadlines, cleanup, suspension and queueing.")
    resources: Resources = object_field(Resources, "Resources of each generation pod.")
    workspace: Workspace = object_field(Workspace, "Volume for the taxonomy snapshot, model cache and outputs.")


class Progress(StatusModel):
    percent: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description=(
            "Share of the teacher's work done, in % (requests weighted by their token budget, every stage; moves "
            "within a stage)."
        ),
    )
    samples: int | None = Field(default=None, ge=0, description="Samples generated so far.")
    target_samples: int | None = Field(default=None, ge=0, description="Samples the run aims for.")
    output_tokens_per_second: float | None = Field(default=None, ge=0, description="Teacher output tokens/s.")
    stage: str | None = Field(default=None, max_length=64, description="Current pipeline stage.")
    eta_seconds: int | None = Field(
        default=None, ge=0, description="Estimated seconds left; absent until the teacher has finished a request."
    )
    eta: str | None = Field(default=None, max_length=32, description="eta_seconds in human form, e.g. 12m30s.")
    updated: datetime | None = Field(default=None, description="When progress was last sampled.")


class Shards(StatusModel):
    total: int = Field(default=0, ge=0, description="Shards (pods) in all.")
    active: int = Field(default=0, ge=0, description="Shards running.")
    succeeded: int = Field(default=0, ge=0, description="Shards done.")
    failed: int = Field(default=0, ge=0, description="Pod failures so far.")


class Counts(StatusModel):
    generated: int = Field(default=0, ge=0, description="Samples the teacher produced.")
    kept: int = Field(default=0, ge=0, description="Samples that passed every filter.")
    dropped: int = Field(default=0, ge=0, description="Malformed or filtered samples.")
    knowledge: int = Field(default=0, ge=0, description="Samples in the knowledge set.")
    skills: int = Field(default=0, ge=0, description="Samples in the skills set.")


class Outputs(StatusModel):
    knowledge: str | None = Field(default=None, max_length=1024, description="Knowledge-phase set (workspace path).")
    skills: str | None = Field(default=None, max_length=1024, description="Skills-phase set (workspace path).")
    multiple_choice: str | None = Field(
        default=None, max_length=1024, description="Multiple-choice questions for evaluation (workspace path)."
    )
    held_out: str | None = Field(
        default=None,
        max_length=1024,
        description="The taxonomy's seed examples, never trained on verbatim, for evaluation (workspace path).",
    )
    counts: Counts | None = Field(default=None, description="Sample counts.")


class SyntheticDataJobStatus(StatusModel):
    phase: Phase | None = Field(
        default=None, description="Pending, Waiting, Running, Mixing, Succeeded, Failed or Suspended."
    )
    observed_generation: int | None = Field(default=None, description="Generation the status reflects.")
    taxonomy_revision: str | None = Field(default=None, max_length=64, description="Pinned Taxonomy revision.")
    taxonomy_snapshot: str | None = Field(
        default=None,
        max_length=1024,
        description="Workspace path of the pinned Taxonomy snapshot; kept by later syncs while this job runs.",
    )
    teacher_dtype: str | None = Field(
        default=None, max_length=16, description="dtype the in-pod teacher ran in (auto resolved for the node)."
    )
    progress: Progress | None = Field(default=None, description="Live progress; absent when unknown.")
    shards: Shards | None = Field(default=None, description="Shard pods.")
    outputs: Outputs | None = Field(default=None, description="Generated data sets.")
    usage: Usage | None = Field(default=None, description="GPU-seconds and tokens.")
    start_time: datetime | None = Field(default=None, description="When generation started.")
    completion_time: datetime | None = Field(default=None, description="When the job finished.")
    conditions: list[Condition] | None = Field(
        default=None,
        max_length=16,
        description="TaxonomyReady, Running, Suspended, Ready, Failed.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class SyntheticDataJob(ApiModel):
    """Expands a Taxonomy's seed examples into InstructLab-format training data with a teacher model."""

    spec: SyntheticDataJobSpec
    status: SyntheticDataJobStatus | None = None


PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Progress", "type": "integer", "jsonPath": ".status.progress.percent", "description": "Percent done"},
    {"name": "Samples", "type": "integer", "jsonPath": ".status.progress.samples", "priority": 1},
    {"name": "ETA", "type": "string", "jsonPath": ".status.progress.eta"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
