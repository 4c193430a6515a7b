"""Synthetic data generation with a real teacher: SmolLM2-135M-Instruct served by vLLM's CPU build, once per session
as an OpenAI-compatible server (the endpoint backend) and once in-process (the offline engine backend)."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labrador_trainer.cli import main as cli
from labrador_trainer.sdg import parse
from labrador_trainer.sdg.chunk import chunk_text
from labrador_trainer.sdg.flows import FLOWS, leaf_slug
from labrador_trainer.sdg.prompts import NAMES, PromptError, load_templates
from labrador_trainer.sdg.run import shard_of, targets
from labrador_trainer.sdg.serve import free_port, openai_server
from labrador_trainer.taxonomy.sync import SyncOptions, sync_taxonomy
from tests.workloads.conftest import GGUF, TAXONOMY, DocsRepo, commit_all, point_documents, run_git, write_msgs

pytestmark = pytest.mark.workloads
VENV_BIN = Path(sys.executable).parent


# -- pure parts ------------------------------------------------------------------------------------------------------
def test_parsers_are_strict() -> None:
    text = "Question: What does a chickadee eat?\nAnswer: Seeds and insects.\n\nQuestion: Where?\nAnswer: Forests."
    assert parse.parse_pairs(text) == [("What does a chickadee eat?", "Seeds and insects.")]  # "Where?" is too short
    assert parse.parse_pairs("**Question:** Who are the Swifties?\n**Answer:** Taylor Swift's fans.") == [
        ("Who are the Swifties?", "Taylor Swift's fans.")
    ]
    assert parse.parse_pairs("Sure! Here are some questions.") == []
    assert parse.parse_pairs(None) == []
    assert parse.parse_question("Question: List synonyms of happy.\nAnswer: glad") == "List synonyms of happy."
    assert parse.parse_question("List synonyms of happy.") is None  # no label: malformed
    assert parse.parse_field("Context: The team met on Monday.", "Context", min_words=5) == "The team met on Monday."
    assert parse.parse_field("Context: Short.", "Context", min_words=5) is None
    assert [parse.parse_verdict(t) for t in ("YES", "no.", " Yes, it is", "Maybe", "The answer is YES", "")] == [
        True,
        False,
        True,
        None,
        None,
        None,
    ]


def test_chunks_respect_the_token_budget() -> None:
    words = lambda s: len(s.split())  # noqa: E731 (a stand-in tokenizer: one token per word)
    text = "\n\n".join(" ".join(f"w{p}_{i}" for i in range(n)) for p, n in enumerate([30, 80, 10, 250, 5]))
    chunks = chunk_text(text, words, max_tokens=100)
    assert all(words(c) <= 100 for c in chunks)
    assert sorted(" ".join(chunks).split()) == sorted(text.split())  # nothing lost, nothing repeated
    assert chunk_text("", words) == []


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_sharding_covers_every_leaf_exactly_once(n: int) -> None:
    leaves = [{"path": f"leaf{i:02d}/qna.yaml", "seed_examples": 5} for i in range(11)]
    shards = [shard_of(leaves, i, n) for i in range(n)]
    assert sorted(leaf["path"] for s in shards for leaf in s) == [leaf["path"] for leaf in leaves]
    assert shards == [shard_of(leaves, i, n) for i in range(n)]  # deterministic


def test_targets_scale_down_to_max_samples() -> None:
    leaves = [{"path": "a", "seed_examples": 5}, {"path": "b", "seed_examples": 15}]
    assert targets(leaves, 10, None) == {"a": 50, "b": 150}
    capped = targets(leaves, 10, 40)
    assert capped == {"a": 10, "b": 30} and sum(capped.values()) <= 40


def test_multiple_choice_distractors_fall_back_to_seed_answers() -> None:
    import random

    from labrador_trainer.sdg.mix import multiple_choice

    knowledge = {
        "a": [{"id": "1", "answer": "x", "question": "q1"}],
        "b": [{"id": "2", "answer": "y", "question": "q2"}],
    }
    mcq = multiple_choice(knowledge, 3, random.Random(1), {"a": ["s1", "s2", "s3", "x"]})
    assert [q["id"] for q in mcq] == ["1"]  # leaf b has too few distinct answers: skipped, not padded
    assert sorted(mcq[0]["choices"]) == ["s1", "s2", "s3", "x"] and mcq[0]["choices"][mcq[0]["answer"]] == "x"


def test_prompt_overrides_and_errors(tmp_path: Path) -> None:
    built_in = load_templates()
    assert set(built_in) == set(NAMES)
    (tmp_path / "judge_relevancy.yaml").write_text("system: s\nuser: 'Q={{ question }}'\nassistant: '{{ verdict }}'\n")
    mine = load_templates(tmp_path)
    assert mine["judge_relevancy"].messages([], {"question": "q?"})[-1]["content"] == "Q=q?"
    assert mine["knowledge_qa"].system == built_in["knowledge_qa"].system
    (tmp_path / "judge_pair.yaml").write_text("system: s\nuser: '{% if %}'\nassistant: a\n")
    with pytest.raises(PromptError, match=r"judge_pair.yaml:1: template syntax error"):
        load_templates(tmp_path)
    (tmp_path / "judge_pair.yaml").unlink()
    (tmp_path / "judge_typo.yaml").write_text("system: s\nuser: u\nassistant: a\n")
    with pytest.raises(PromptError, match="unknown prompt file"):
        load_templates(tmp_path)


def test_leaf_store_keeps_every_row_across_a_resume(tmp_path: Path) -> None:
    """Rows come back as written, U+2028 and U+0085 inside a teacher's text included (JSON leaves them raw: they are
    not line breaks), and a line torn by a kill mid-append is skipped, so that request is asked again."""
    from labrador_trainer.sdg.run import LeafStore

    store = LeafStore(tmp_path, "leaf")
    rows = [{"i": 0, "items": [{"answer": "one\u2028two"}]}, {"i": 1, "items": [{"answer": "next\x85line ✓"}]}]
    store.append("0-qa", rows[:1])
    store.append("0-qa", rows[1:])
    with (store.dir / "0-qa.partial.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"i": 2, "items": [{"ans')
    assert store.partial("0-qa") == {0: rows[0], 1: rows[1]}
    items = [r["items"][0] for r in rows]
    store.finish_stage("0-qa", items, {"kept": 2}, [])
    assert store.stage_output("0-qa") == items and store.stage_counts("0-qa") == {"kept": 2}
    assert sorted(p.name for p in store.dir.iterdir()) == ["0-qa.dropped.jsonl", "0-qa.json", "0-qa.jsonl"]


def test_flows_name_their_templates() -> None:
    for stages in FLOWS.values():
        for flow in stages.values():
            assert flow[0].generates and not any(s.generates for s in flow[1:])
            assert all(s.template in NAMES for s in flow)


def test_observer_has_no_eta_before_a_rate_and_counts_units() -> None:
    import math

    from labrador_trainer.sdg.observe import Observer

    obs = Observer(None, progress=False)
    obs.credit_units(100)  # an earlier run's finished stage
    obs.plan_units(400)
    assert obs.fraction() == 0.25 and obs.eta() is None
    obs.add_requests(3, round_=0)
    time.sleep(0.05)
    obs.request_done(10, 100)
    assert obs.fraction() == 0.5
    eta = obs.eta()
    assert eta is not None and math.isfinite(eta) and eta > 0
    obs.plan_units(250)  # the next stage has fewer items than planned: the estimate shrinks, progress jumps ahead
    assert obs.fraction() == 0.8
    obs.finish()
    assert obs.fraction() == 1.0 and obs.eta() == 0.0


class ScriptedTeacher:
    """A stand-in teacher for the runner's bookkeeping only (the real engine runs in the tests below): answers each
    request by its template's shape and reports it as finished, one by one, like the vLLM backend does."""

    dtype = "float32"

    def __init__(self, observer: Any) -> None:
        self.observer = observer
        self.fractions: list[tuple[str, float]] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, reqs: Any, on_done: Any = None) -> list[Any]:
        from labrador_trainer.sdg.llm import Completion

        outs = []
        for i, r in enumerate(reqs):
            system = r.messages[0]["content"].lower()
            if r.max_tokens <= 8:
                text = "YES"
            elif "context" in system and "question" not in r.messages[-1]["content"].lower()[:40]:
                text = "Context: " + " ".join(f"word{j}" for j in range(12))
            else:
                text = f"Question: What is item number {i} here?\nAnswer: It is item {i}, as the text says."
            c = Completion(text, 12)
            outs.append(c)
            if on_done:
                on_done(i, c)
            self.fractions.append((self.observer._stage or "", self.observer.fraction()))
        return outs

    def close(self) -> None:
        pass


def test_progress_moves_with_every_request_of_every_stage(snapshot: Path, tmp_path: Path) -> None:
    from labrador_trainer.sdg.config import GenerateConfig
    from labrador_trainer.sdg.observe import Observer
    from labrador_trainer.sdg.run import Runner

    cfg = GenerateConfig.model_validate(
        {
            "taxonomy": str(snapshot),
            "outputDir": str(tmp_path / "out"),
            "teacher": {"kind": "endpoint", "url": "http://127.0.0.1:9/v1", "model": "x"},
            "pipeline": "full",
            "samplesPerSeedExample": 1,
        }
    )
    obs = Observer(None, progress=False)
    teacher = ScriptedTeacher(obs)
    summary = Runner(cfg, load_templates(), lambda: teacher, obs).run((0, 1))
    assert summary["dtype"] == "float32"
    by_stage: dict[str, list[float]] = {}
    for stage, f in teacher.fractions:
        by_stage.setdefault(stage, []).append(f)
    assert len(by_stage) >= 4  # qa, judges, questions, answers...
    for stage, fs in by_stage.items():  # within each stage, every finished request moves the fraction
        assert all(b > a for a, b in itertools.pairwise(fs)), (stage, fs)
    seq = [f for _, f in teacher.fractions]
    assert seq[0] > 0 and seq[-1] <= 1.0 and obs.fraction() == 1.0
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(seq))  # never backwards between stages


def test_bad_input_exits_2_with_a_termination_message(tmp_path: Path) -> None:
    term = tmp_path / "term.json"
    argv = ["generate", "--taxonomy", str(tmp_path / "nope"), "--output-dir", str(tmp_path / "out")]
    code = cli([*argv, "--teacher-url", "http://127.0.0.1:9/v1", "--termination-log", str(term), "--no-progress"])
    assert code == 2 and "not a taxonomy snapshot" in json.loads(term.read_text())["error"]
    (tmp_path / "cfg.json").write_text(
        json.dumps({"taxonomy": "x", "outputDir": "y", "teacher": {}, "pipeline": "odd"})
    )
    assert cli(["generate", "--config", str(tmp_path / "cfg.json"), "--termination-log", str(term)]) == 2
    assert "pipeline" in json.loads(term.read_text())["error"]
    with pytest.raises(SystemExit) as exc:
        cli(["generate", "--shard", "2/2"])
    assert exc.value.code == 2


def test_an_unreachable_teacher_fails_retryably(tmp_path: Path, snapshot: Path) -> None:
    """Transient failures are retried, then the run exits 1 (the pod is retried) and records nothing for them."""
    teacher = {
        "kind": "endpoint",
        "url": f"http://127.0.0.1:{free_port()}/v1",
        "model": "m",
        "retryBackoffSeconds": 0.01,
    }
    cfg = {
        "taxonomy": str(snapshot),
        "outputDir": str(tmp_path / "out"),
        "teacher": teacher,
        "samplesPerSeedExample": 1,
    }
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    term = tmp_path / "term.json"
    assert (
        cli(["generate", "--config", str(tmp_path / "cfg.json"), "--termination-log", str(term), "--no-progress"]) == 1
    )
    result = json.loads(term.read_text())
    assert result["retryable"] and "failed after retries" in result["error"] and "APIConnectionError" in result["error"]
    assert not list((tmp_path / "out").glob("*/*.partial.jsonl")) and not list((tmp_path / "out").glob("*/0-*.json"))


# -- with the teacher -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def teacher() -> Path:
    from labrador_trainer.models import cached_model

    return cached_model(GGUF)


@pytest.fixture(scope="session")
def snapshot(tmp_path_factory: pytest.TempPathFactory, docs_repo: DocsRepo) -> Path:
    """A `taxonomy sync` snapshot of the fixture taxonomy: 2 knowledge, 2 grounded and 1 freeform skill leaves."""
    root = tmp_path_factory.mktemp("sdg-taxonomy") / "taxonomy"
    shutil.copytree(TAXONOMY, root)
    point_documents(root, docs_repo)
    run_git(root, "init", "-q", "-b", "main")
    commit_all(root, "taxonomy")
    dest = tmp_path_factory.mktemp("sdg-snapshot")
    report = sync_taxonomy(SyncOptions(url=root.as_uri(), ref="main", dest=dest))
    assert report.valid and len(report.leaves) == 5
    return dest


@pytest.fixture(scope="session")
def server(teacher: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """vLLM's own OpenAI-compatible server on loopback, eager (no graph compile, which takes minutes on CPU)."""
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    flags = ["--gpu-memory-utilization", "0.1", "--max-model-len", "4096", "--seed", "7", "--enforce-eager"]
    with openai_server(teacher, log, args=flags) as url:
        yield f"{url}/v1"


def _generate(out: Path, snapshot: Path, server: str, *extra: str) -> dict[str, Any]:
    term = out.parent / f"{out.name}-{len(list(out.parent.glob('*.json')))}.json"
    argv = ["generate", "--taxonomy", str(snapshot), "--output-dir", str(out), "--teacher-url", server]
    argv += ["--teacher-name", "teacher", "--termination-log", str(term), "--no-progress", *extra]
    assert cli(argv) == 0
    summary = json.loads(term.read_text())
    assert len(term.read_bytes()) <= 4096
    return summary


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, snapshot: Path, server: str) -> dict[str, Any]:
    """The full pipeline, as two shards writing into one output directory (as the Indexed Job's pods do)."""
    out = tmp_path_factory.mktemp("sdg-full") / "shards"
    shards = [_generate(out, snapshot, server, "--shard", f"{i}/2", "--samples-per-seed-example", "3") for i in (0, 1)]
    return {"out": out, "shards": shards}


@pytest.fixture(scope="module")
def simple(tmp_path_factory: pytest.TempPathFactory, snapshot: Path, server: str) -> dict[str, Any]:
    """The simple pipeline (no judges): what a 135M teacher keeps reliably enough for every mixing assertion."""
    out = tmp_path_factory.mktemp("sdg-simple") / "shards"
    return {
        "out": out,
        "shards": [_generate(out, snapshot, server, "--pipeline", "simple", "--samples-per-seed-example", "2")],
    }


def test_simple_pipeline_every_flow_keeps_parsed_samples(simple: dict[str, Any]) -> None:
    summaries = [json.loads(p.read_text()) for p in simple["out"].glob("*/summary.json")]
    kept: Counter[str] = Counter()
    for s in summaries:
        assert s["generated"] == s["kept"] + sum(s["dropped_by"].values()), s
        assert set(s["dropped_by"]) <= {"malformed", "duplicate", "seed_copy"}, s  # no judges in this pipeline
        kept[s["type"]] += s["kept"]
    assert set(kept) == {"knowledge", "freeform_skill", "grounded_skill"} and all(kept.values()), kept


def test_full_pipeline_every_flow_is_generated_and_judged(generated: dict[str, Any], snapshot: Path) -> None:
    out: Path = generated["out"]
    summaries = [json.loads(p.read_text()) for p in sorted(out.glob("*/summary.json"))]
    kept_by_type: Counter[str] = Counter()
    for s in summaries:
        # every sample is accounted for: kept, or dropped for a named reason
        assert s["generated"] == s["kept"] + sum(s["dropped_by"].values()), s
        assert set(s["dropped_by"]) <= {
            "malformed",
            "error",
            "faithfulness",
            "relevancy",
            "question_quality",
            "pair_quality",
            "duplicate",
            "seed_copy",
        }
        assert "error" not in s["dropped_by"], s
        kept_by_type[s["type"]] += s["kept"]
        rows = [json.loads(line) for line in (out / leaf_slug(s["path"]) / "samples.jsonl").read_text().splitlines()]
        assert len(rows) == s["kept"]
        for row in rows:
            assert row["question"].strip() and row["answer"].strip() and row["leaf"] == s["path"]
            if s["type"] == "knowledge":
                assert row["chunk"].strip()
            if s["type"] == "grounded_skill":
                assert len(row["context"].split()) >= 5
    assert set(kept_by_type) == {"knowledge", "freeform_skill", "grounded_skill"}
    assert sum(kept_by_type.values()) > 0, kept_by_type
    # every flow's generating stage produced parseable samples that reached the judges
    parsed_by_type: Counter[str] = Counter()
    for s in summaries:
        leaf = out / leaf_slug(s["path"])
        parsed_by_type[s["type"]] += sum(
            len(p.read_text().splitlines()) for p in leaf.glob("0-*.jsonl") if "." not in p.stem
        )
    assert all(parsed_by_type[t] > 0 for t in ("knowledge", "freeform_skill", "grounded_skill")), parsed_by_type
    # the judges ran and rejected something (a 135M teacher is far from perfect)
    totals = sum((Counter(s["dropped_by"]) for s in summaries), Counter())
    assert totals["faithfulness"] + totals["relevancy"] + totals["question_quality"] + totals["pair_quality"] > 0


def test_shards_cover_every_leaf_exactly_once(generated: dict[str, Any], snapshot: Path) -> None:
    leaves = [leaf["path"] for leaf in json.loads((snapshot / "taxonomy.json").read_text())["leaves"]]
    per_shard = [[leaf["path"] for leaf in s["leaves"]] for s in generated["shards"]]
    assert sorted(per_shard[0] + per_shard[1]) == sorted(leaves)
    assert not set(per_shard[0]) & set(per_shard[1])
    assert [s["shard"] for s in generated["shards"]] == ["0/2", "1/2"]
    assert all(s["output_tokens"] > 0 and s["requests"] > 0 for s in generated["shards"])


def test_rerun_of_a_finished_shard_sends_nothing(generated: dict[str, Any], snapshot: Path, server: str) -> None:
    again = _generate(generated["out"], snapshot, server, "--shard", "0/2", "--samples-per-seed-example", "3")
    assert again["requests"] == 0
    assert again["counts"] == generated["shards"][0]["counts"]


def test_resume_after_kill_skips_finished_work(tmp_path: Path, snapshot: Path, server: str) -> None:
    argv = [str(VENV_BIN / "labrador-trainer"), "generate", "--taxonomy", str(snapshot), "--teacher-url", server]
    argv += ["--teacher-name", "teacher", "--pipeline", "full", "--samples-per-seed-example", "2", "--no-progress"]
    out = tmp_path / "out"
    proc = subprocess.Popen([*argv, "--output-dir", str(out), "--batch-size", "4"], start_new_session=True)
    deadline = time.monotonic() + 300
    # kill once the first stage is done for some leaves and the second is under way
    while not list(out.glob("*/1-*.partial.jsonl")):
        assert proc.poll() is None, "generate finished before it could be killed: raise the work size"
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in out.glob("*/0-*.jsonl") if not p.name.endswith("partial.jsonl")}
    partial = sum(len(p.read_text().splitlines()) for p in out.glob("*/*.partial.jsonl"))
    assert finished and partial > 0
    assert not list(out.glob("*/summary.json"))

    term = tmp_path / "term.json"
    subprocess.run([*argv, "--output-dir", str(out), "--termination-log", str(term)], check=True, timeout=600)
    resumed = json.loads(term.read_text())
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # first-stage results were not redone
    assert not list(out.glob("*/*.partial.jsonl"))
    assert len(list(out.glob("*/summary.json"))) == 5
    # an uninterrupted run of the same work sends every request; the resumed one only what was missing
    fresh = _generate(tmp_path / "fresh", snapshot, server, "--samples-per-seed-example", "2")
    assert resumed["requests"] < fresh["requests"]


def test_mix_builds_training_and_evaluation_sets(simple: dict[str, Any], snapshot: Path, tmp_path: Path) -> None:
    replay = write_msgs(tmp_path / "replay.jsonl", 10)
    outs = {k: str(tmp_path / f"{k}.jsonl") for k in ("knowledge", "skills", "multipleChoice", "heldOut")}
    cfg = {
        "inputDir": str(simple["out"]),
        "outputs": outs,
        "mixing": {
            "maxSkillSamplesPerLeaf": 1,
            "distractorDocuments": 2,
            "multipleChoicePerLeaf": 3,
            "replay": [{"path": str(replay), "samplingSize": 0.5}, {"path": str(replay), "samplingSize": 3}],
        },
        "seed": 1,
        "taxonomy": str(snapshot),
    }
    (tmp_path / "mix.json").write_text(json.dumps(cfg))
    term = tmp_path / "term.json"
    assert cli(["mix", "--config", str(tmp_path / "mix.json"), "--termination-log", str(term)]) == 0
    result = json.loads(term.read_text())
    rows = {k: [json.loads(line) for line in Path(p).read_text().splitlines()] for k, p in outs.items()}
    summaries = [json.loads(p.read_text()) for p in simple["out"].glob("*/summary.json")]
    kept_knowledge = sum(s["kept"] for s in summaries if s["type"] == "knowledge")
    skill_leaves = sum(1 for s in summaries if s["type"] != "knowledge" and s["kept"] > 0)
    # knowledge phase: each Q/A with its document, plus an unmask copy
    assert len(rows["knowledge"]) == 2 * kept_knowledge
    assert sum(r["unmask"] for r in rows["knowledge"]) == kept_knowledge
    # skills phase: knowledge with distractors + at most 1 sample per skill leaf + 5 + 3 replayed rows
    assert len(rows["skills"]) == kept_knowledge + skill_leaves + 5 + 3
    with_docs = [r for r in rows["skills"] if "Document 1:" in r["messages"][1]["content"]]
    assert len(with_docs) == kept_knowledge
    # 1 relevant + 2 distractor chunks (from the other leaf's document)
    assert all(len(re.findall(r"(?m)^Document \d+:$", r["messages"][1]["content"])) == 3 for r in with_docs)
    for r in rows["knowledge"] + rows["skills"]:
        assert [m["role"] for m in r["messages"]] == ["system", "user", "assistant"] and r["id"]
    # multiple choice: 4 distinct choices, the answer index points at the generated answer
    by_id = {
        json.loads(line)["id"]: json.loads(line)
        for p in simple["out"].glob("*/samples.jsonl")
        for line in p.read_text().splitlines()
    }
    assert rows["multipleChoice"]
    for q in rows["multipleChoice"]:
        assert len(set(q["choices"])) == 4 and q["choices"][q["answer"]] == by_id[q["id"]]["answer"]
    assert Counter(q["leaf"] for q in rows["multipleChoice"]).most_common(1)[0][1] <= 3
    # held out: every human seed Q/A (knowledge seeds have three each), never a generated one
    assert len(rows["heldOut"]) == 2 * 5 * 3 + 6 + 5 + 6
    assert {r["type"] for r in rows["heldOut"]} == {"knowledge", "freeform_skill", "grounded_skill"}
    assert result["counts"]["knowledge"] == len(rows["knowledge"]) and result["counts"]["skills"] == len(rows["skills"])
    assert result["counts"]["kept"] == sum(s["kept"] for s in summaries)
    assert result["outputs"]["heldOut"] == outs["heldOut"]


def test_mix_output_loads_in_the_trainer(simple: dict[str, Any], snapshot: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from labrador_trainer.models import cached_model
    from labrador_trainer.train.data import load_dataset

    outs = {k: str(tmp_path / f"{k}.jsonl") for k in ("knowledge", "skills", "multipleChoice", "heldOut")}
    (tmp_path / "mix.json").write_text(json.dumps({"inputDir": str(simple["out"]), "outputs": outs}))
    assert cli(["mix", "--config", str(tmp_path / "mix.json")]) == 0
    tok = AutoTokenizer.from_pretrained(cached_model(GGUF))
    for k in ("knowledge", "skills"):
        ds = load_dataset(outs[k], tok, max_seq_len=4096, min_seq_len=1)
        assert ds.stats["kept"] == len(Path(outs[k]).read_text().splitlines()) > 0, ds.stats


def test_mix_refuses_missing_leaf_outputs(simple: dict[str, Any], snapshot: Path, tmp_path: Path) -> None:
    partial = tmp_path / "shards"
    shutil.copytree(simple["out"], partial)
    shutil.rmtree(next(partial.glob("knowledge__*")))
    outs = {k: str(tmp_path / f"{k}.jsonl") for k in ("knowledge", "skills", "multipleChoice", "heldOut")}
    (tmp_path / "mix.json").write_text(
        json.dumps({"inputDir": str(partial), "outputs": outs, "taxonomy": str(snapshot)})
    )
    term = tmp_path / "term.json"
    assert cli(["mix", "--config", str(tmp_path / "mix.json"), "--termination-log", str(term)]) == 2
    assert "no generated samples for 1 leaves" in json.loads(term.read_text())["error"]
    assert not Path(outs["knowledge"]).exists()


def test_offline_engine_backend(teacher: Path, snapshot: Path, tmp_path: Path) -> None:
    """The in-process vLLM engine: every request of a round queued at once, each reported as it finishes; an
    over-long prompt is an error for that request only; ``auto`` resolved for this CPU."""
    from labrador_trainer.hardware import inference_dtype
    from labrador_trainer.sdg.llm import ChatRequest, VllmGenerator

    gen = VllmGenerator(str(teacher), {"gpuMemoryUtilization": 0.1, "maxModelLen": 1024, "enforceEager": True}, seed=3)
    try:
        reqs = [ChatRequest([{"role": "user", "content": f"Name a bird. ({i})"}], 16, 0.7) for i in range(6)]
        reqs.insert(3, ChatRequest([{"role": "user", "content": "word " * 2000}], 16))
        seen: list[int] = []
        outs = gen.generate(reqs, lambda i, c: seen.append(i))
        assert sorted(seen) == list(range(7))
        assert seen[0] == 3  # refused before the engine: reported first
        assert gen.dtype == inference_dtype("auto", cpu=True)
        # requests are reported as they finish, not when the whole call returns: short ones before long ones
        count = "Count from 1 to 300, numbers separated by commas."
        mixed = [ChatRequest([{"role": "user", "content": count}], n) for n in (64, 2, 64, 2, 2)]
        stamps: dict[int, float] = {}
        t0 = time.monotonic()
        gen.generate(mixed, lambda i, c: stamps.setdefault(i, time.monotonic() - t0))
        assert max(stamps[i] for i in (1, 3, 4)) < min(stamps[i] for i in (0, 2)), stamps
        assert outs[3].text is None and "over the context" in (outs[3].error or "")
        assert all(o.text and o.output_tokens > 0 for i, o in enumerate(outs) if i != 3)
        assert gen.count_tokens("black-capped chickadee") > 0
    finally:
        gen.close()
