"""The one typed run config of ``labrador-trainer train``, loaded from one JSON file (``--config run.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Phase(_Strict):
    """One training phase; phase N+1 starts from phase N's final HF checkpoint."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    data_path: str
    epochs: int = Field(1, ge=1)
    lr: float = Field(2e-5, gt=0)
    effective_batch_size: int = Field(32, ge=1, description="samples per optimizer step, all ranks together")
    warmup_steps: int = Field(0, ge=0)
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"


class Lora(_Strict):
    rank: int = Field(8, ge=1)
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]


class Fsdp(_Strict):
    """How a multi-process run shards the model (FSDP2); a one-process run ignores it."""

    sharding_strategy: Literal["FULL_SHARD", "SHARD_GRAD_OP", "HYBRID_SHARD", "NO_SHARD"] = Field(
        "FULL_SHARD", description="NO_SHARD: every process holds the whole model, gradients all-reduced"
    )
    cpu_offload: bool = Field(False, description="keep parameters, gradients and optimizer state in host memory (GPU)")


class TrainConfig(_Strict):
    model_path: str = Field(description="HF model directory (see `labrador-trainer model prepare`)")
    output_dir: str
    phases: list[Phase] = Field(min_length=1)
    max_seq_len: int = Field(4096, ge=1, description="longer samples are dropped (and counted)")
    min_seq_len: int = Field(20, ge=1, description="shorter samples are dropped (and counted)")
    max_batch_len: int = Field(8192, ge=1, description="token budget of one packed micro-batch per process")
    seed: int = 42
    dtype: Literal["auto", "float32", "bfloat16"] = Field("auto", description="auto: bf16 on CUDA, fp32 on CPU")
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    checkpoint_every: int | None = Field(None, ge=1, description="samples between checkpoints (plus phase end)")
    keep_states: int = Field(1, ge=1, description="full resume states kept on disk")
    lora: Lora | None = None
    fsdp: Fsdp = Fsdp()
    export_dir: str | None = Field(None, description="copy the last phase's final model here (atomically)")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.max_batch_len < self.max_seq_len:
            raise ValueError(
                f"max_batch_len ({self.max_batch_len}) < max_seq_len ({self.max_seq_len}): the longest sample would "
                "not fit one micro-batch; raise max_batch_len or lower max_seq_len"
            )
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ValueError(f"phase names must be unique, got {names}")
        return self

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        raw = json.loads(Path(path).read_text())
        return cls.from_operator(raw) if "job" in raw and "phase" in raw else cls.model_validate(raw)

    @classmethod
    def from_operator(cls, raw: dict[str, Any]) -> TrainConfig:
        """The per-phase run config the operator writes (FineTuneJob ConfigMap, camelCase API fields)."""
        phase, training = raw["phase"], raw.get("training") or {}
        lora, fsdp = training.get("lora"), training.get("fsdp") or {}
        return cls(
            model_path=raw["model"],
            output_dir=raw["outputDir"],
            export_dir=raw.get("exportDir"),
            phases=[
                Phase(
                    name=phase["name"],
                    data_path=raw["data"],
                    epochs=phase.get("epochs", 1),
                    lr=phase.get("learningRate", 2e-5),
                    effective_batch_size=phase.get("effectiveBatchSize", 32),
                    warmup_steps=phase.get("warmupSteps", 0),
                    scheduler=phase.get("lrScheduler", "cosine"),
                )
            ],
            max_seq_len=training.get("maxSeqLen", 4096),
            max_batch_len=training.get("maxBatchLen", 8192),
            seed=training.get("seed", 42),
            checkpoint_every=training.get("checkpointEvery") or None,
            fsdp=Fsdp(
                sharding_strategy=fsdp.get("shardingStrategy", "FULL_SHARD"), cpu_offload=fsdp.get("cpuOffload", False)
            ),
            lora=Lora(
                rank=lora.get("rank", 8),
                alpha=lora.get("alpha", 16),
                dropout=lora.get("dropout", 0.0),
                **({"target_modules": lora["targetModules"]} if lora.get("targetModules") else {}),
            )
            if lora
            else None,
        )
