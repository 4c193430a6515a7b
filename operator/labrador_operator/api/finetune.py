"""FineTuneJob: torchrun trains a student model in phases (knowledge, then skills) and evaluates it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from labrador_operator.api.common import (
    DNS_LABEL,
    IMMUTABLE,
    REL_PATH_MESSAGE,
    REL_PATH_RULE,
    ApiModel,
    BaseResources,
    Condition,
    EndpointSource,
    LocalObjectReference,
    ModelSource,
    Quantity,
    RunPolicy,
    ShortString,
    StatusModel,
    Usage,
    Workspace,
    cel,
    object_field,
    validations,
)
from labrador_operator.api.sdg import VllmSettings

KIND = "FineTuneJob"
PLURAL = "finetunejobs"
SHORT_NAMES = ["ftj", "ft"]


class Phase(StrEnum):
    PENDING = "Pending"
    WAITING = "Waiting"
    RUNNING = "Running"
    EVALUATING = "Evaluating"
    EXPORTING = "Exporting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"


class ConditionType(StrEnum):
    DATA_READY = "DataReady"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    READY = "Ready"  # the tuned model is available
    PROMOTED = "Promoted"  # the evaluation passed spec.evaluation.gate: the model may be exported and served
    SERVING = "Serving"  # spec.serve: the promoted model's OpenAI-compatible server answers
    FAILED = "Failed"


class Reason(StrEnum):
    WAITING_FOR_DATA = "WaitingForSyntheticData"
    DATA_NOT_FOUND = "SyntheticDataJobNotFound"
    DATA_FAILED = "SyntheticDataJobFailed"
    DATA_READY = "DataReady"
    TRAINING = "Training"
    STARTING = "Starting"  # the Job exists, its pods are not running yet (no problem reported)
    EVALUATING = "Evaluating"
    EXPORTING = "Exporting"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    USER_ERROR = "UserError"
    GATE_PASSED = "GatePassed"
    GATE_FAILED = "GateFailed"
    NO_GATE = "NoGate"
    SERVER_READY = "ServerReady"
    SERVER_STARTING = "ServerStarting"
    SERVER_STOPPED = "ServerStopped"  # spec.serve.replicas 0
    SERVER_FAILED = "ServerFailed"  # the Deployment's progress deadline passed; KServe could not load the model
    KSERVE_NOT_ENABLED = "KServeNotEnabled"  # runtime kserve, but the operator was not started with kserve enabled
    KSERVE_NOT_INSTALLED = "KServeNotInstalled"  # runtime kserve, but the cluster serves no InferenceService API
    NOT_PROMOTED = "NotPromoted"  # spec.serve, but the gate rejected the model: never served


Dataset = Literal["knowledge", "skills"]


class TrainingPhase(ApiModel):
    """One training phase. The next phase starts from this one's selected checkpoint."""

    name: str = Field(
        description="Phase name, unique in the job (used in child names).",
        min_length=1,
        max_length=20,
        pattern=DNS_LABEL,
    )
    dataset: Dataset = Field(description="Which data set to train on: knowledge or skills.")
    epochs: int = Field(default=1, ge=1, le=1000, description="Passes over the data set.")
    learning_rate: float = Field(default=2e-5, gt=0, le=1, description="Peak learning rate of AdamW.")
    effective_batch_size: int = Field(
        default=128,
        ge=1,
        le=1_000_000,
        description="Samples per optimizer step over all GPUs (gradient accumulation fills the gap).",
    )
    warmup_steps: int = Field(default=25, ge=0, le=1_000_000, description="Linear warmup, in optimizer steps.")
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field(
        default="cosine", description="Learning-rate schedule after warmup."
    )


def instructlab_phases() -> list[TrainingPhase]:
    """The InstructLab recipe: knowledge 7 epochs at 2e-5 (batch 128), then skills 10 epochs at 6e-6 (3840)."""
    return [
        TrainingPhase(name="knowledge", dataset="knowledge", epochs=7, learning_rate=2e-5, effective_batch_size=128),
        TrainingPhase(name="skills", dataset="skills", epochs=10, learning_rate=6e-6, effective_batch_size=3840),
    ]


class DataSource(ApiModel):
    """Training data: the outputs of a SyntheticDataJob, or explicit files on the workspace."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "has(self.syntheticDataJobRef) != (has(self.knowledgePath) || has(self.skillsPath))",
                "set either spec.data.syntheticDataJobRef or spec.data.knowledgePath/skillsPath, not both "
                "and not neither",
                reason="FieldValueInvalid",
            ),
        )
    }

    synthetic_data_job_ref: LocalObjectReference | None = Field(
        default=None, description="Wait for this SyntheticDataJob and train on its outputs."
    )
    knowledge_path: str | None = Field(
        default=None,
        max_length=1024,
        description="Knowledge-phase messages JSONL, relative to the workspace.",
        json_schema_extra=validations(cel(REL_PATH_RULE, REL_PATH_MESSAGE)),
    )
    skills_path: str | None = Field(
        default=None,
        max_length=1024,
        description="Skills-phase messages JSONL, relative to the workspace.",
        json_schema_extra=validations(cel(REL_PATH_RULE, REL_PATH_MESSAGE)),
    )

    @model_validator(mode="after")
    def _ref_xor_paths(self) -> DataSource:
        paths = self.knowledge_path is not None or self.skills_path is not None
        if (self.synthetic_data_job_ref is not None) == paths:
            raise ValueError("set either spec.data.syntheticDataJobRef or spec.data.knowledgePath/skillsPath")
        return self


class Lora(ApiModel):
    """Train low-rank adapters instead of all weights (peft)."""

    rank: int = Field(default=16, ge=1, le=1024, description="Adapter rank r.")
    alpha: int = Field(default=32, ge=1, le=4096, description="Scaling alpha.")
    dropout: float = Field(default=0.05, ge=0, lt=1, description="Dropout on adapter inputs.")
    target_modules: list[ShortString] | None = Field(
        default=None, max_length=64, description="Module names to adapt (default: all linear projections)."
    )


class Fsdp(ApiModel):
    """Fully sharded data parallel settings, used when more than one process trains."""

    sharding_strategy: Literal["FULL_SHARD", "SHARD_GRAD_OP", "HYBRID_SHARD", "NO_SHARD"] = Field(
        default="FULL_SHARD", description="How parameters, gradients and optimizer state are sharded."
    )
    cpu_offload: bool = Field(default=False, description="Offload parameters to host memory.")


class Training(ApiModel):
    """Settings shared by every phase."""

    max_seq_len: int = Field(
        default=4096,
        ge=32,
        le=1_048_576,
        description="Longest sample in tokens; longer samples are dropped and counted.",
    )
    max_batch_len: int = Field(
        default=20_000,
        ge=64,
        le=10_000_000,
        description="Token budget per GPU per micro-batch for padding-free packing.",
    )
    lora: Lora | None = Field(default=None, description="Set to train LoRA adapters instead of all weights.")
    fsdp: Fsdp = object_field(Fsdp, "FSDP settings (multi-process runs).")
    checkpoint_every: int = Field(
        default=0,
        ge=0,
        le=100_000_000,
        description="Save an HF checkpoint every this many samples (0: at phase end only).",
    )
    seed: int = Field(default=42, ge=0, le=2**31 - 1, description="Seed for data order and initialisation.")
    dtype: Literal["auto", "bfloat16", "float32"] = Field(
        default="auto",
        description=(
            "Training precision (bf16 autocast over fp32 weights, or fp32). auto: bfloat16 on GPUs, float32 on CPUs "
            "(where bf16 is often emulated, ~30x slower)."
        ),
    )
    gradient_checkpointing: bool = Field(default=False, description="Trade compute for activation memory.")


class Rdma(ApiModel):
    """RDMA (InfiniBand / RoCE) for NCCL between nodes: the device plugin's extended resource, and IPC_LOCK."""

    resource_name: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
        description="Extended resource of the RDMA device plugin each training pod requests, e.g. "
        "rdma/rdma_shared_device_a or nvidia.com/hostdev.",
    )
    count: int = Field(default=1, ge=1, le=64, description="How many of resourceName each pod requests.")


class TrainingResources(BaseResources):
    """Resources of a training phase: nodes × GPUs per node, one pod per node."""

    nodes: int = Field(default=1, ge=1, le=512, description="Pods (nodes) per phase; torchrun --nnodes.")
    gpus_per_node: int = Field(
        default=1,
        ge=0,
        le=16,
        description="nvidia.com/gpu per pod and processes per pod (torchrun "
        "--nproc-per-node); 0 trains on CPU with one process.",
    )
    rdma: Rdma | None = Field(
        default=None,
        description="Opt in to RDMA for the training pods of multi-node phases: they request the RDMA device and "
        "add the IPC_LOCK capability (NCCL pins memory for the NIC). Pod Security 'restricted' and 'baseline' "
        "forbid IPC_LOCK: the namespace must enforce 'privileged', else admission rejects the pods.",
    )


WorkspacePath = Annotated[
    str,
    Field(min_length=1, max_length=1024, json_schema_extra=validations(cel(REL_PATH_RULE, REL_PATH_MESSAGE))),
]


class Judge(ApiModel):
    """A judge for answer scoring: a model served in the evaluation pod, or an endpoint. Exactly one."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "has(self.model) != has(self.endpoint)",
                "exactly one of spec.evaluation.judge.model or spec.evaluation.judge.endpoint must be set",
                reason="FieldValueInvalid",
            ),
        )
    }

    model: ModelSource | None = Field(default=None, description="Judge weights, served by vLLM in the pod.")
    endpoint: EndpointSource | None = Field(default=None, description="An OpenAI-compatible endpoint.")
    style: Literal["mt-bench", "dk-bench"] = Field(
        default="mt-bench",
        description="How the judge rates each answer against the reference answer: mt-bench (MT-Bench's "
        "reference-guided grading, 1-10) or dk-bench (a DK-Bench-style domain-knowledge rubric, 1-5). The aggregate "
        "score's judge component is the mean rating divided by the scale's maximum.",
    )


class Gate(ApiModel):
    """Promotion thresholds on the evaluation of tuned vs base. The job ends Succeeded either way; its `Promoted`
    condition says whether the tuned model passed (with every measured number in its message), and only a promoted
    model is exported or served. A threshold on a measure the evaluation did not produce (no MCQ items, no judge)
    fails the gate: a gate never passes on a number nobody measured."""

    min_held_out_loss_improvement: float | None = Field(
        default=None,
        ge=-100,
        le=100,
        description="Base minus tuned loss on the taxonomy's held-out seed Q/A must be at least this (nats per "
        "token; 0: no worse than base).",
    )
    min_mcq_accuracy_gain: float | None = Field(
        default=None,
        ge=-1,
        le=1,
        description="Tuned minus base multiple-choice accuracy (0-1) must be at least this.",
    )
    min_judge_rating_gain: float | None = Field(
        default=None,
        ge=-9,
        le=9,
        description="Tuned minus base mean judge rating, on the judge's scale (1-10 mt-bench, 1-5 dk-bench), must be "
        "at least this (needs spec.evaluation.judge).",
    )
    min_score_gain: float | None = Field(
        default=None,
        ge=-1,
        le=1,
        description="Tuned minus base aggregate score (docs/evaluation.md) must be at least this.",
    )
    max_forgetting: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Tuned minus base loss on general material the run did not train on (the forgetting delta) "
        "must be at most this.",
    )


class Evaluation(ApiModel):
    """Evaluation of base vs tuned, also used to pick each phase's best checkpoint."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "!has(self.gate) || self.enabled",
                "spec.evaluation.gate needs spec.evaluation.enabled: a gate without an evaluation would pass nothing",
                reason="FieldValueInvalid",
            ),
        )
    }

    enabled: bool = Field(default=True, description="Run the evaluation Job after training.")
    checkpoint_selection: Literal["final", "best"] = Field(
        default="final",
        description="Which checkpoint of a phase the next phase (and the output) starts from: the last one, or the "
        "one the evaluation scores best.",
    )
    judge: Judge | None = Field(default=None, description="Judge for answer scoring (default: no judged scores).")
    max_questions: int = Field(default=200, ge=1, le=100_000, description="Questions per measure.")
    general: list[WorkspacePath] | None = Field(
        default=None,
        max_length=32,
        description="Messages JSONL files of general material the run does not train on, relative to the workspace, "
        "for the forgetting check (default: the SyntheticDataJob's replay datasets).",
    )
    gate: Gate | None = Field(
        default=None,
        description="Thresholds the tuned model must pass to be promoted (default: every evaluated model is).",
    )

    @model_validator(mode="after")
    def _gate_needs_evaluation(self) -> Evaluation:
        if self.gate is not None and not self.enabled:
            raise ValueError("spec.evaluation.gate needs spec.evaluation.enabled")
        return self


EXPORT_URI_RULE = (
    "self.matches('^hf://[A-Za-z0-9][-A-Za-z0-9_.]*/[A-Za-z0-9][-A-Za-z0-9_.]*$') || "
    "self.matches('^s3://[a-z0-9][-a-z0-9.]{1,61}[a-z0-9](/.*)?$') || "
    "self.matches('^oci://[a-z0-9][-a-z0-9.:]*(/[-a-z0-9._]+)+(:[-A-Za-z0-9_.]+)?$')"
)


class Output(ApiModel):
    path: str | None = Field(
        default=None,
        max_length=1024,
        description="Directory for the final model, relative to the workspace (default models/<namespace>/<name>).",
        json_schema_extra=validations(cel(REL_PATH_RULE, REL_PATH_MESSAGE)),
    )
    uri: str | None = Field(
        default=None,
        min_length=6,
        max_length=1024,
        description="Where a promoted model is exported once the job has succeeded: s3://<bucket>/<prefix> (the files "
        "and a checksum manifest), oci://<registry>/<repository>[:<tag>] (an ORAS artifact) or hf://<org>/<name> (a "
        "Hub repository). A model the quality gate rejects is never exported. The location and digest land in "
        "status.outputs.exported.",
        json_schema_extra=validations(
            cel(
                EXPORT_URI_RULE,
                "must be s3://<bucket>/<prefix>, oci://<registry>/<repo>[:<tag>] or hf://<org>/<name>",
                reason="FieldValueInvalid",
            )
        ),
    )
    secret_ref: LocalObjectReference | None = Field(
        default=None,
        description="Credentials for the export step only: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for s3://, "
        "HF_TOKEN for hf:// (as env); for oci:// a kubernetes.io/dockerconfigjson Secret whose .dockerconfigjson "
        "alone is mounted as a read-only file (only its entry for the registry's host is used, over https).",
    )
    endpoint: str | None = Field(
        default=None,
        max_length=1024,
        pattern=r"^https?://[^\s]+$",
        description="S3 endpoint URL for a non-AWS store, or the Hub's URL for a private Hub.",
    )


class ServeResources(BaseResources):
    """Resources and placement of each serving pod (vLLM, the whole model in memory)."""

    cpu: Quantity = Field(default="2", description="CPU request and limit of each serving pod.")
    memory: Quantity = Field(default="8Gi", description="Memory request and limit of each serving pod.")
    gpus: int = Field(default=0, ge=0, le=16, description="nvidia.com/gpu of each serving pod (0: vLLM on CPU).")


class Serve(ApiModel):
    """Serving of the tuned model once the job has succeeded and the model is promoted: vLLM's OpenAI-compatible
    server (``/v1/chat/completions``, ``/v1/models``) as a Deployment and a Service ``<name>-serve`` on port 8000, in
    the workload image; or, with ``runtime: kserve``, a KServe InferenceService ``<name>-serve`` (RawDeployment,
    KServe's Hugging Face runtime on vLLM, OpenAI API under ``/openai/v1``) reading the model from the workspace
    claim. A model the quality gate rejects is never served. Removing spec.serve removes the server."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "!has(self.runtime) || self.runtime != 'kserve' || !has(self.replicas) || self.replicas >= 1",
                "spec.serve.runtime kserve needs spec.serve.replicas >= 1 (an InferenceService's minReplicas and "
                "maxReplicas); remove spec.serve to stop serving",
                field_path=".replicas",
                reason="FieldValueInvalid",
            ),
            cel(
                "!has(self.runtime) || self.runtime != 'kserve' || !has(self.compareBase) || !self.compareBase",
                "spec.serve.compareBase is served by runtime deployment only",
                field_path=".compareBase",
                reason="FieldValueInvalid",
            ),
        )
    }

    runtime: Literal["deployment", "kserve"] = Field(
        default="deployment",
        description="Who runs the server. deployment: the operator's own Deployment and Service (vLLM in the "
        "workload image). kserve: a KServe InferenceService (serving.kserve.io/v1beta1, RawDeployment mode, model "
        "format huggingface, storageUri pvc://<workspace claim>/<output model>); needs KServe in the cluster and "
        "the chart's kserve.enabled. replicas becomes its minReplicas and maxReplicas (>= 1); compareBase is not "
        "available.",
    )
    replicas: int = Field(
        default=1,
        ge=0,
        le=16,
        description="Server pods (0 stops serving, keeps the Service). runtime kserve: the InferenceService's "
        "minReplicas and maxReplicas, at least 1.",
    )
    served_model_name: str | None = Field(
        default=None,
        max_length=128,
        pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*$",
        description="The model name clients send in requests (default: the FineTuneJob's name).",
    )
    compare_base: bool = Field(
        default=False,
        description="Also serve the base model (``<name>-serve-base``, model name ``<served name>-base``) for "
        "side-by-side answers, e.g. ``labrador-trainer chat --compare``.",
    )
    vllm: VllmSettings | None = Field(
        default=None,
        description="How vLLM serves the model (context length, memory share, dtype, eager); as for an SDG teacher.",
    )
    resources: ServeResources = object_field(ServeResources, "Resources of each serving pod.")

    @model_validator(mode="after")
    def _kserve(self) -> Serve:
        if self.runtime == "kserve" and self.replicas < 1:
            raise ValueError("spec.serve.runtime kserve needs spec.serve.replicas >= 1; remove spec.serve to stop")
        if self.runtime == "kserve" and self.compare_base:
            raise ValueError("spec.serve.compareBase is served by runtime deployment only")
        return self


class FineTuneJobSpec(ApiModel):
    """What to train, on what, how, and where the result goes."""

    model: ModelSource = Field(description="The student model to fine-tune.", json_schema_extra=validations(IMMUTABLE))
    data: DataSource = Field(description="Training data.", json_schema_extra=validations(IMMUTABLE))
    phases: list[TrainingPhase] = Field(
        default_factory=instructlab_phases,
        min_length=1,
        max_length=8,
        description="Phases in order (default: the InstructLab recipe, knowledge then skills).",
        json_schema_extra={
            "default": [p.wire() for p in instructlab_phases()],
            **validations(cel("self.all(p, self.exists_one(q, q.name == p.name))", "phase names must be unique")),
        },
    )
    training: Training = object_field(Training, "Settings shared by every phase.")
    resources: TrainingResources = object_field(TrainingResources, "Nodes, GPUs and placement of each phase.")
    evaluation: Evaluation = object_field(Evaluation, "Evaluation of base vs tuned.")
    output: Output = object_field(Output, "Where the final model goes.")
    serve: Serve | None = Field(
        default=None, description="Serve the promoted model (an OpenAI-compatible vLLM server); absent: not served."
    )
    run_policy: RunPolicy = object_field(RunPolicy, "Retries, deadlines, cleanup, suspension and queueing.")
    workspace: Workspace = object_field(Workspace, "Volume for data, checkpoints and the model.")

    @model_validator(mode="after")
    def _unique_phases(self) -> FineTuneJobSpec:
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ValueError("phase names must be unique")
        return self


class PhaseStatus(StatusModel):
    name: str = Field(description="Phase name.", max_length=63)
    state: Literal["Pending", "Running", "Succeeded", "Failed"] = Field(description="Phase state.")
    start_time: datetime | None = Field(default=None, description="When the phase's pods started.")
    completion_time: datetime | None = Field(default=None, description="When the phase finished.")
    final_loss: float | None = Field(default=None, description="Training loss at the end of the phase.")
    checkpoints: list[str] | None = Field(default=None, max_length=100, description="Saved HF checkpoints.")
    best_checkpoint: str | None = Field(default=None, max_length=1024, description="Selected checkpoint.")
    gpu_seconds: float | None = Field(default=None, ge=0, description="GPU-seconds used by the phase.")
    tokens: int | None = Field(default=None, ge=0, description="Tokens trained on in the phase.")
    dtype: str | None = Field(default=None, max_length=16, description="Precision the phase ran in (auto resolved).")
    resumed_from_step: int | None = Field(
        default=None, ge=0, description="The saved step the phase's last run resumed from (after a preemption/restart)."
    )


class Progress(StatusModel):
    percent: int | None = Field(default=None, ge=0, le=100, description="Steps done over all phases, in %.")
    step: int | None = Field(default=None, ge=0, description="Optimizer step in the current phase.")
    total_steps: int | None = Field(default=None, ge=0, description="Optimizer steps of the current phase.")
    epoch: float | None = Field(default=None, ge=0, description="Epoch (fractional) in the current phase.")
    loss: float | None = Field(default=None, description="Latest training loss.")
    learning_rate: float | None = Field(default=None, ge=0, description="Current learning rate.")
    tokens_per_second: float | None = Field(default=None, ge=0, description="Training tokens/s over all GPUs.")
    eta_seconds: int | None = Field(default=None, ge=0, description="Estimated seconds left in the job.")
    resumed_from_step: int | None = Field(
        default=None, ge=0, description="The saved step the running phase resumed from (absent: started afresh)."
    )
    eta: str | None = Field(default=None, max_length=32, description="eta_seconds in human form.")
    updated: datetime | None = Field(default=None, description="When progress was last sampled.")


class Measure(StatusModel):
    base: float | None = Field(default=None, description="The base model's value.")
    tuned: float | None = Field(default=None, description="The tuned model's value.")


class EvaluationSummary(StatusModel):
    report: str | None = Field(default=None, max_length=1024, description="JSON report (workspace path).")
    held_out_loss: Measure | None = Field(default=None, description="Loss on the taxonomy's held-out seed Q/A.")
    mcq_accuracy: Measure | None = Field(default=None, description="Multiple-choice accuracy (0-1).")
    judge_rating: Measure | None = Field(default=None, description="Mean judge rating, on the judge's scale.")
    base_score: float | None = Field(default=None, description="Aggregate score of the base model.")
    tuned_score: float | None = Field(default=None, description="Aggregate score of the tuned model.")
    forgetting_delta: float | None = Field(
        default=None, description="Tuned − base on material the run did not train on."
    )


class Exported(StatusModel):
    uri: str | None = Field(default=None, max_length=1024, description="Where the model was exported.")
    digest: str | None = Field(
        default=None,
        max_length=128,
        description="sha256 of the export: the OCI manifest digest, the S3 checksum manifest's sha256, or the Hub "
        "commit.",
    )
    files: int | None = Field(default=None, ge=0, description="Files exported.")
    bytes: int | None = Field(default=None, ge=0, description="Bytes exported.")


class Serving(StatusModel):
    url: str | None = Field(
        default=None,
        max_length=1024,
        description="The server's URL: the Service's in-cluster URL (OpenAI API under /v1), or, with runtime "
        "kserve, the InferenceService's status.url (OpenAI API under /openai/v1).",
    )
    runtime: Literal["kserve"] | None = Field(
        default=None, description="kserve when a KServe InferenceService serves the model (absent: the Deployment)."
    )
    model: str | None = Field(default=None, max_length=128, description="The model name to send in requests.")
    ready_replicas: int | None = Field(default=None, ge=0, description="Server pods ready.")
    base_url: str | None = Field(
        default=None, max_length=1024, description="The base model's server (spec.serve.compareBase)."
    )
    base_model: str | None = Field(default=None, max_length=128, description="The base model's name there.")


class Outputs(StatusModel):
    model: str | None = Field(default=None, max_length=1024, description="Final model directory (workspace path).")
    evaluation: EvaluationSummary | None = Field(default=None, description="Evaluation results.")
    exported: Exported | None = Field(default=None, description="The exported model (spec.output.uri).")
    serving: Serving | None = Field(default=None, description="Where the promoted model is served (spec.serve).")


class FineTuneJobStatus(StatusModel):
    phase: Phase | None = Field(
        default=None,
        description="Pending, Waiting, Running, Evaluating, Exporting, Succeeded, Failed or Suspended.",
    )
    observed_generation: int | None = Field(default=None, description="Generation the status reflects.")
    current_phase: str | None = Field(default=None, max_length=63, description="Training phase running now.")
    phases: list[PhaseStatus] | None = Field(default=None, max_length=8, description="Per-phase state.")
    progress: Progress | None = Field(default=None, description="Live progress; absent when unknown.")
    restarts: int | None = Field(default=None, ge=0, description="Pod restarts over all phases.")
    outputs: Outputs | None = Field(default=None, description="Model and evaluation.")
    usage: Usage | None = Field(default=None, description="GPU-seconds and tokens over all phases.")
    start_time: datetime | None = Field(default=None, description="When training started.")
    completion_time: datetime | None = Field(default=None, description="When the job finished.")
    conditions: list[Condition] | None = Field(
        default=None,
        max_length=16,
        description="DataReady, Running, Suspended, Ready, Promoted, Serving, Failed.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class FineTuneJob(ApiModel):
    """Trains a student model in phases with torchrun and evaluates it against the base model."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                "metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter): "
                "it names each phase's headless Service",
                reason="FieldValueInvalid",
            )
        )
    }

    spec: FineTuneJobSpec
    status: FineTuneJobStatus | None = None


PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Stage", "type": "string", "jsonPath": ".status.currentPhase"},
    {"name": "Progress", "type": "integer", "jsonPath": ".status.progress.percent", "description": "Percent done"},
    {"name": "Loss", "type": "number", "jsonPath": ".status.progress.loss", "priority": 1},
    {"name": "ETA", "type": "string", "jsonPath": ".status.progress.eta"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Promoted", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Promoted")].status'},
    {"name": "Serving", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Serving")].status', "priority": 1},
    {"name": "Endpoint", "type": "string", "jsonPath": ".status.outputs.serving.url"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
