"""The operator's run configs are what the workloads read: the FineTuneJob phase config parses as a TrainConfig."""

from __future__ import annotations

import json
from pathlib import Path

from labrador_operator.api.finetune import FineTuneJobSpec
from labrador_operator.builders import finetune as b
from labrador_operator.settings import Settings
from labrador_trainer.train.config import TrainConfig


def test_phase_configs_load_in_the_trainer(tmp_path: Path) -> None:
    spec = FineTuneJobSpec.model_validate(
        {
            "model": {"uri": "pvc://models/student"},
            "data": {"knowledgePath": "data/k.jsonl", "skillsPath": "data/s.jsonl"},
            "training": {"maxSeqLen": 2048, "maxBatchLen": 8192, "lora": {"rank": 4}, "checkpointEvery": 1000},
        }
    )
    owner = b.Owner("ns", "ft", "uid")
    cm = b.build_config_map(owner, spec, b.Data("data/k.jsonl", "data/s.jsonl"), Settings())["data"]
    for i, phase in enumerate(spec.phases):
        path = tmp_path / f"{phase.name}.json"
        path.write_text(cm[f"{phase.name}.json"])
        cfg = TrainConfig.load(path)
        assert [p.name for p in cfg.phases] == [phase.name]
        assert cfg.phases[0].lr == phase.learning_rate and cfg.phases[0].epochs == phase.epochs
        assert cfg.max_seq_len == 2048 and cfg.lora is not None and cfg.lora.rank == 4
        assert cfg.checkpoint_every == 1000
        # the trainer's final model of this phase is where the operator starts the next phase from
        final = Path(cfg.output_dir) / "phases" / phase.name / "final"
        assert str(final) == f"/workspace/{b.final_checkpoint(owner, phase.name)}"
        if i + 1 < len(spec.phases):
            nxt = json.loads(cm[f"{spec.phases[i + 1].name}.json"])
            assert nxt["model"] == str(final)
    assert cfg.export_dir == "/workspace/models/ns/ft"
