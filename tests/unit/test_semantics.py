"""The checks the validating webhook makes beyond the schema."""

from __future__ import annotations

from labrador_operator.api import semantics
from labrador_operator.api.finetune import FineTuneJobSpec
from labrador_operator.api.sdg import SyntheticDataJobSpec


def ft(**over: object) -> FineTuneJobSpec:
    base: dict[str, object] = {
        "model": {"uri": "pvc://m/x"},
        "data": {"knowledgePath": "k", "skillsPath": "s"},
        "resources": {"nodes": 2, "gpusPerNode": 8},
    }
    base.update(over)
    return FineTuneJobSpec.model_validate(base)


def test_valid_finetunejob_passes() -> None:
    assert semantics.finetunejob(ft(), data_job_exists=None) == semantics.Verdict()


def test_phase_without_its_dataset_is_an_error() -> None:
    v = semantics.finetunejob(ft(data={"knowledgePath": "k"}), data_job_exists=None)
    assert v.errors == [
        "spec.phases[1].dataset: phase 'skills' trains on 'skills' but spec.data.skillsPath is not "
        "set; set it or change the phase's dataset"
    ]


def test_batch_smaller_than_world_and_batch_len_below_seq_len() -> None:
    v = semantics.finetunejob(
        ft(
            phases=[{"name": "k", "dataset": "knowledge", "effectiveBatchSize": 8}],
            training={"maxSeqLen": 8192, "maxBatchLen": 4096},
        ),
        data_job_exists=None,
    )
    assert [e.split(":")[0] for e in v.errors] == ["spec.phases[0].effectiveBatchSize", "spec.training.maxBatchLen"]


def test_missing_reference_is_a_warning() -> None:
    v = semantics.finetunejob(ft(data={"syntheticDataJobRef": {"name": "d"}}), data_job_exists=False)
    assert v.errors == [] and "does not exist yet" in v.warnings[0]


def test_gpus_must_be_a_multiple_of_tensor_parallel() -> None:
    spec = SyntheticDataJobSpec.model_validate(
        {
            "taxonomyRef": {"name": "t"},
            "teacher": {"model": {"uri": "pvc://m/x"}, "vllm": {"tensorParallelSize": 2}},
            "resources": {"gpus": 3},
        }
    )
    v = semantics.syntheticdatajob(spec, taxonomy_exists=True)
    assert v.errors and v.errors[0].startswith("spec.resources.gpus: 3 is not a multiple")
