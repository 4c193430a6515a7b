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
    cm = b.config_files(owner, spec, b.Data("data/k.jsonl", "data/s.jsonl"))
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
    # an oci:// source's Secret: its file's path reaches the fetch step as --registry-config
    from labrador_operator.builders.models import REGISTRY_CONFIG

    oci = model_mount(ModelSource(uri="oci://r.io/a/m:1", secret_ref={"name": "pull"}), "base")
    assert oci.fetch is not None
    assert build_parser().parse_args(oci.fetch[1:]).registry_config == REGISTRY_CONFIG


def test_workload_summaries_parse_whole_in_the_operators_result_models(tmp_path: Path) -> None:
    """What the trainer really writes reaches status unchanged: nothing of it is dropped as ill-typed."""
    from labrador_operator.reconcile.results import EvaluateResult, GenerateResult, SyncResult, TrainResult
    from labrador_trainer.taxonomy.models import Issue, Leaf, Report
    from labrador_trainer.taxonomy.sync import termination_summary

    report = Report(leaves=[Leaf(path="knowledge/a/qna.yaml", type="knowledge", seed_examples=5)],
                    errors=[Issue(path="knowledge/a/qna.yaml", line=3, message="bad")])  # fmt: skip
    report.revision = "abc"
    sync = json.loads(termination_summary(report))
    parsed = SyncResult.model_validate(sync)
    assert parsed.revision == "abc" and len(parsed.leaves) == 1 and parsed.errors[0].line == 3
    # the train and generate summaries' keys the operator reads (run_training / Runner.run return these)
    train = {"final_loss": 1.25, "tokens": 1000, "dtype": "float32", "checkpoints": ["/w/c1"], "phases": []}
    assert TrainResult.model_validate(train).model_dump(exclude_defaults=True) == {
        "final_loss": 1.25, "tokens": 1000, "dtype": "float32", "checkpoints": ["/w/c1"]
    }  # fmt: skip
    assert GenerateResult.model_validate({"output_tokens": 5, "dtype": "bfloat16", "shard": "0/1"}).output_tokens == 5
    # the evaluation's termination message as labrador-trainer evaluate writes it (evaluate/report.py)
    from labrador_trainer.evaluate.report import termination

    measures = {
        "mcq": {"base": {"accuracy": 0.25}, "tuned": {"accuracy": 0.5}},
        "held_out": {"base": {"loss": 2.5}, "tuned": {"loss": 1.75}},
        "judge": {"base": None, "tuned": None},
        "retention_loss": {"base": 3.0, "tuned": 2.9},
    }
    full = {"measures": measures, "score_components": ["mcq", "held_out"], "base_score": 0.5, "tuned_score": 0.75,
            "forgetting_delta": -0.1}  # fmt: skip
    ev = termination(full, "/w/r.json")
    parsed = EvaluateResult.model_validate(ev)
    assert parsed.model_dump(exclude={"measures"}) == {
        "report": "/w/r.json", "base_score": 0.5, "tuned_score": 0.75, "forgetting_delta": -0.1
    }  # fmt: skip
    assert parsed.measures is not None and parsed.measures.judge_rating is None
    assert (parsed.measures.mcq_accuracy.base, parsed.measures.mcq_accuracy.tuned) == (0.25, 0.5)  # type: ignore[union-attr]
    assert (parsed.measures.held_out_loss.base, parsed.measures.held_out_loss.tuned) == (2.5, 1.75)  # type: ignore[union-attr]


def test_a_hostile_termination_message_never_reaches_status() -> None:
    """Any pod can write any termination message: wrong types and sizes are dropped, one field or one list entry at a
    time, the rest kept — never an exception (a reconcile that raises retries forever) or a value status refuses."""
    from labrador_operator.reconcile.results import EvaluateResult, SyncResult, TrainResult, lenient
    from labrador_operator.reconcile.taxonomy import _from_result

    raw = {
        "revision": "r1",
        "leaves": [
            {"path": "k/a", "type": "knowledge", "seed_examples": 5},
            "not a leaf",
            {"path": "k/b", "type": "evil", "seed_examples": 1},
            {"path": "k/c", "type": "knowledge", "seed_examples": "many"},
        ],
        "errors": [{"path": "k/a", "line": -4, "message": "x"}, {"path": "k/a", "line": 2, "message": "y"}],
        "counts": {"knowledge": "lots", "freeform_skill": 2},
        "error_count": "three",
    }
    status = _from_result(raw, "snap", "ws")
    assert [leaf["path"] for leaf in status["leaves"]] == ["k/a"]
    assert status["errors"] == [{"path": "k/a", "line": 2, "message": "y"}] and status["errorCount"] == 1
    assert status["counts"]["freeformSkill"] == 2 and status["counts"]["knowledge"] == 0
    assert raw["leaves"][1] == "not a leaf"  # the caller's object is left as it was
    assert lenient(TrainResult, {"final_loss": float("nan"), "tokens": "x", "dtype": "float32"}).model_dump(
        exclude_defaults=True
    ) == {"dtype": "float32"}
    assert lenient(EvaluateResult, ["not", "a", "dict"]) == EvaluateResult()
    assert lenient(SyncResult, None) == SyncResult()


def test_evaluate_config_with_a_judge_style_loads_in_the_trainer(tmp_path: Path) -> None:
    from labrador_trainer.evaluate.config import EvaluateConfig, load

    spec = FineTuneJobSpec.model_validate(
        {
            "model": {"uri": "pvc://models/student"},
            "data": {"knowledgePath": "data/k.jsonl"},
            "evaluation": {"judge": {"endpoint": {"url": "http://judge/v1", "model": "j"}, "style": "dk-bench"}},
        }
    )
    data = b.Data("data/k.jsonl", None, held_out="data/held_out.jsonl")
    cm = b.config_files(b.Owner("ns", "ft", "uid"), spec, data)
    (tmp_path / "evaluate.json").write_text(cm["evaluate.json"])
    cfg = load(tmp_path / "evaluate.json", select=False)
    assert isinstance(cfg, EvaluateConfig) and cfg.judge is not None
    assert cfg.judge.style == "dk-bench" and cfg.evaluation.examples == 3
    assert (cfg.judge_dict() or {})["style"] == "dk-bench"


def test_the_serving_argv_is_what_serve_parses() -> None:
    """builders/serving.py's argv for ``labrador-trainer serve`` parses, and every engine setting reaches vLLM."""
    from labrador_operator.builders import serving
    from labrador_trainer.cli import build_parser
    from labrador_trainer.serving import run_serve, vllm_flags

    vllm = {"maxModelLen": 2048, "gpuMemoryUtilization": 0.4, "dtype": "float32", "enforceEager": True}
    spec = FineTuneJobSpec.model_validate(
        {"model": {"uri": "pvc://models/student"}, "data": {"knowledgePath": "k"}, "serve": {"vllm": vllm}}
    )
    owner = b.Owner("ns", "ft", "uid")
    for role in (serving.TUNED, serving.BASE):
        argv = serving.serve_argv(owner, spec, spec.serve, role)  # type: ignore[arg-type]
        assert argv[0] == "labrador-trainer"
        args = build_parser().parse_args(argv[1:])
        assert args.func is run_serve and args.port == serving.PORT and args.dtype == "float32"
        assert vllm_flags(args) == ["--max-model-len", "2048", "--gpu-memory-utilization", "0.4",
                                    "--tensor-parallel-size", "1", "--enforce-eager"]  # fmt: skip
