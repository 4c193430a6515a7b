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
            "training": {
                "maxSeqLen": 2048,
                "maxBatchLen": 8192,
                "lora": {"rank": 4},
                "checkpointEvery": 1000,
                "fsdp": {"shardingStrategy": "SHARD_GRAD_OP", "cpuOffload": True},
            },
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
        assert cfg.fsdp.sharding_strategy == "SHARD_GRAD_OP" and cfg.fsdp.cpu_offload
        # the trainer's final model of this phase is where the operator starts the next phase from
        final = Path(cfg.output_dir) / "phases" / phase.name / "final"
        assert str(final) == f"/workspace/{b.final_checkpoint(owner, phase.name)}"
        if i + 1 < len(spec.phases):
            nxt = json.loads(cm[f"{spec.phases[i + 1].name}.json"])
            assert nxt["model"] == str(final)
    assert cfg.export_dir == "/workspace/models/ns/ft"


def _sync_argv(source: dict[str, object]) -> list[str]:
    from labrador_operator.api.taxonomy import TaxonomySpec
    from labrador_operator.builders import taxonomy as tb

    spec = TaxonomySpec.model_validate({"source": source, "documentsSecretRef": {"name": "docs"}})
    job = tb.build_sync_job(tb.Owner("ns", "tax", "uid"), spec, 1, 0, Settings())
    return job["spec"]["template"]["spec"]["containers"][0]["command"]


def test_sync_commands_parse_in_the_trainer_cli() -> None:
    from labrador_trainer.cli import build_parser

    sources = [
        {"git": {"url": "https://example.com/t.git", "ref": "v1", "path": "tax", "secretRef": {"name": "git"}}},
        {"configMap": {"name": "files", "items": [{"key": "a", "path": "knowledge/a/qna.yaml"}]}},
        {"volume": {"claimName": "data", "subPath": "taxonomy"}},
    ]
    parsed = [build_parser().parse_args(_sync_argv(s)[1:]) for s in sources]
    assert parsed[0].url == "https://example.com/t.git" and parsed[0].ref == "v1" and parsed[0].path == "tax"
    assert str(parsed[0].credentials_dir) == "/etc/labrador/git-credentials"
    assert str(parsed[1].source_dir) == str(parsed[2].source_dir) == "/taxonomy-src"
    assert all(p.format == "json" and str(p.dest).startswith("/workspace/taxonomies/ns/tax/") for p in parsed)


def test_sync_summary_fills_the_taxonomy_status() -> None:
    from labrador_operator.reconcile.taxonomy import _from_result
    from labrador_trainer.taxonomy.models import Issue, Leaf, Report
    from labrador_trainer.taxonomy.sync import termination_summary

    report = Report(
        leaves=[Leaf(path=f"knowledge/topic{i}", type="knowledge", seed_examples=5) for i in range(200)]
        + [Leaf(path="compositional_skills/writing/poems", type="freeform_skill", seed_examples=5)],
        errors=[Issue(path="knowledge/topic1/qna.yaml", line=7, message="too few seed examples")],
    )
    report.revision = "abc123"
    text = termination_summary(report)
    assert len(text.encode()) <= 4096
    status = _from_result(json.loads(text), "taxonomies/ns/tax/tax-sync-g1", "ws")
    assert status["revision"] == "abc123" and status["errorCount"] == 1
    assert status["counts"] == {"knowledge": 200, "freeformSkill": 1, "groundedSkill": 0, "total": 201}
    assert status["errors"] == [{"path": "knowledge/topic1/qna.yaml", "line": 7, "message": "too few seed examples"}]
    assert 0 < len(status["leaves"]) < 201  # as many as fit in the termination message; counts stay exact


def test_model_fetch_init_step_parses_in_the_trainer_cli() -> None:
    from labrador_operator.api.common import ModelSource
    from labrador_operator.builders.models import model_mount
    from labrador_trainer.cli import build_parser
    from labrador_trainer.fetch import parse

    for uri, endpoint in (
        ("hf://org/model@v2", None),
        ("s3://bucket/models/m", "https://minio:9000"),
        ("oci://r.io/a/m:1", None),
    ):
        mount = model_mount(ModelSource(uri=uri, endpoint=endpoint), "base")
        assert mount.fetch is not None
        args = build_parser().parse_args(mount.fetch[1:])
        assert args.uri == uri and args.dest == mount.path and args.endpoint == endpoint
        assert parse(uri).scheme == uri.split(":", 1)[0]
