"""What the workloads report in their termination messages, as typed models. Pure.

A pod's termination message is written by whatever runs in the pod, so it is untrusted input: a value of the wrong
type must never reach status (the API server would refuse the patch with a 422, and the reconcile would retry it
forever). ``lenient`` validates with pydantic and drops what does not fit — a field of the wrong type, or a whole
list entry (a leaf, an error) — keeping the rest. The shapes are the ones ``labrador-trainer`` writes; the contract
tests parse the trainer's own summaries with these models.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

M = TypeVar("M", bound=BaseModel)


class _Result(BaseModel):
    model_config = ConfigDict(extra="ignore")


def lenient(model: type[M], raw: Any) -> M:
    """``raw`` as ``model``, dropping each part that fails validation (never raises)."""
    data: Any = dict(raw) if isinstance(raw, dict) else {}
    for _ in range(64):
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            if not _drop(data, exc.errors()[0]["loc"]):
                break
    return model()


def _drop(data: Any, loc: tuple[Any, ...]) -> bool:
    """Remove what ``loc`` points at: a list entry as a whole, else the innermost key. False when nothing was."""
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            del node[part]
            return True
        if isinstance(node, dict) and part in node:
            if last or not isinstance(node[part], dict | list):
                del node[part]
                return True
            node[part] = node[part].copy()  # never edit the caller's objects
            node = node[part]
            continue
        return False
    return False


class SyncLeaf(_Result):
    path: str = Field(max_length=1024)
    type: Literal["knowledge", "freeform_skill", "grounded_skill"]
    seed_examples: int = Field(default=0, ge=0)


class SyncError(_Result):
    path: str = Field(default="", max_length=1024)
    line: int = Field(default=0, ge=0)
    message: str = ""


class SyncResult(_Result):
    """`labrador-trainer taxonomy sync --termination-log`."""

    valid: bool | None = None
    revision: str | None = None
    counts: dict[str, int] | None = None
    leaves: list[SyncLeaf] = []
    errors: list[SyncError] = []
    error_count: int | None = Field(default=None, ge=0)
    error: str | None = None
    message: str | None = None


class GenerateResult(_Result):
    """`labrador-trainer generate` (one shard)."""

    output_tokens: int = Field(default=0, ge=0)
    dtype: str | None = Field(default=None, max_length=16)


class MixCounts(_Result):
    generated: int | None = Field(default=None, ge=0)
    kept: int | None = Field(default=None, ge=0)
    dropped: int | None = Field(default=None, ge=0)
    knowledge: int | None = Field(default=None, ge=0)
    skills: int | None = Field(default=None, ge=0)


class MixResult(_Result):
    """`labrador-trainer mix`."""

    counts: MixCounts = MixCounts()


class TrainResult(_Result):
    """`labrador-trainer train` (and the checkpoint selection's summary laid over it)."""

    final_loss: float | None = Field(default=None, allow_inf_nan=False)
    tokens: int | None = Field(default=None, ge=0)
    dtype: str | None = Field(default=None, max_length=16)
    checkpoints: list[str] = []
    best_checkpoint: str | None = Field(default=None, max_length=1024)
    resumed_from_step: int | None = Field(default=None, ge=0)


class MeasurePair(_Result):
    base: float | None = Field(default=None, allow_inf_nan=False)
    tuned: float | None = Field(default=None, allow_inf_nan=False)


class EvaluateMeasures(_Result):
    mcq_accuracy: MeasurePair | None = None
    held_out_loss: MeasurePair | None = None
    judge_rating: MeasurePair | None = None
    retention_loss: MeasurePair | None = None


class EvaluateResult(_Result):
    """`labrador-trainer evaluate`."""

    report: str | None = Field(default=None, max_length=1024)
    measures: EvaluateMeasures | None = None
    base_score: float | None = Field(default=None, allow_inf_nan=False)
    tuned_score: float | None = Field(default=None, allow_inf_nan=False)
    forgetting_delta: float | None = Field(default=None, allow_inf_nan=False)


class ExportResult(_Result):
    """`labrador-trainer model export`."""

    uri: str | None = Field(default=None, max_length=1024)
    digest: str | None = Field(default=None, max_length=128, pattern=r"^[A-Za-z0-9:._-]+$")
    files: int | None = Field(default=None, ge=0)
    bytes: int | None = Field(default=None, ge=0)
