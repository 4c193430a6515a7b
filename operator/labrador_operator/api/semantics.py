"""Checks the structural schema and CEL cannot express, used by the validating webhook. Pure.

Each check returns errors (the request is rejected, the message names the field and says what to do) and warnings
(accepted; kubectl prints them) — e.g. a reference to an object that does not exist *yet* is a warning, because
GitOps tools apply a set of manifests in any order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labrador_operator.api.finetune import FineTuneJobSpec
from labrador_operator.api.sdg import SyntheticDataJobSpec


@dataclass
class Verdict:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def finetunejob(spec: FineTuneJobSpec, *, data_job_exists: bool | None) -> Verdict:
    v = Verdict()
    d = spec.data
    if d.synthetic_data_job_ref is None:
        for i, phase in enumerate(spec.phases):
            path = d.knowledge_path if phase.dataset == "knowledge" else d.skills_path
            if not path:
                field_name = "knowledgePath" if phase.dataset == "knowledge" else "skillsPath"
                v.errors.append(
                    f"spec.phases[{i}].dataset: phase {phase.name!r} trains on {phase.dataset!r} but "
                    f"spec.data.{field_name} is not set; set it or change the phase's dataset"
                )
    elif data_job_exists is False:
        v.warnings.append(
            f"spec.data.syntheticDataJobRef: SyntheticDataJob {d.synthetic_data_job_ref.name!r} does "
            "not exist yet; the job waits for it"
        )
    ranks = spec.resources.nodes * max(spec.resources.gpus_per_node, 1)
    for i, phase in enumerate(spec.phases):
        if phase.effective_batch_size < ranks:
            v.errors.append(
                f"spec.phases[{i}].effectiveBatchSize: {phase.effective_batch_size} is smaller than the "
                f"{ranks} training processes (nodes × gpusPerNode); each needs at least one sample per "
                "step"
            )
    if spec.training.max_batch_len < spec.training.max_seq_len:
        v.errors.append(
            f"spec.training.maxBatchLen: {spec.training.max_batch_len} tokens cannot hold one sample of "
            f"spec.training.maxSeqLen ({spec.training.max_seq_len}); raise maxBatchLen or lower maxSeqLen"
        )
    return v


def syntheticdatajob(spec: SyntheticDataJobSpec, *, taxonomy_exists: bool | None) -> Verdict:
    v = Verdict()
    t = spec.teacher
    gpus = spec.resources.gpus
    if t.model is not None and t.vllm is not None and gpus > 0 and gpus % t.vllm.tensor_parallel_size:
        v.errors.append(
            f"spec.resources.gpus: {gpus} is not a multiple of spec.teacher.vllm.tensorParallelSize "
            f"({t.vllm.tensor_parallel_size}); each vLLM engine in a pod spans tensorParallelSize GPUs"
        )
    if taxonomy_exists is False:
        v.warnings.append(
            f"spec.taxonomyRef: Taxonomy {spec.taxonomy_ref.name!r} does not exist yet; the job waits for it"
        )
    return v
