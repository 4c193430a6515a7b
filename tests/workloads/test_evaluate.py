"""labrador-trainer evaluate on the truncated SmolLM2 (2 layers, CPU): a base model vs the same model trained a few
steps on facts the MCQ and held-out sets ask about; a rule-based judge behind a real OpenAI-compatible HTTP API."""

from __future__ import annotations

import json
import math
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch

from labrador_trainer.cli import main as cli
from labrador_trainer.evaluate.inputs import MCQ, load_jsonl, parse_mcq
from labrador_trainer.evaluate.judge import REASON_MAX_CHARS, parse_rating, parse_reason
from labrador_trainer.evaluate.measures import LM, mcq, mcq_samples
from labrador_trainer.evaluate.report import md_escape
from labrador_trainer.evaluate.select import best, checkpoints
from labrador_trainer.train.config import TrainConfig
from labrador_trainer.train.data import IGNORE
from labrador_trainer.train.recipe import run_training
from tests.workloads.conftest import write_msgs

pytestmark = pytest.mark.workloads

SYSTEM = "I am a Red Hat Instruct Model."
LEAF, OTHER = "knowledge/fruit/zorblax", "knowledge/other/quux"
# (question, correct answer, three short distractors): the correct answers are long, so summed log-likelihood
# favours the distractors until the model has learned the facts
FACTS = [
    ("What colour is the zorblax fruit?", "Purple with silver spots all over", ["Red", "Blue", "Green"]),
    ("Where does the zorblax tree grow?", "On the windy cliffs of Varnholm island", ["Spain", "Mars", "Nowhere"]),
    ("How heavy is a ripe zorblax?", "About three kilograms and a half", ["Light", "Heavy", "Tiny"]),
    ("What does a zorblax taste like?", "Sour lemon mixed with roasted almond", ["Sweet", "Salty", "Bitter"]),
    ("When is the zorblax harvested?", "During the second full moon of autumn", ["Summer", "Never", "Monday"]),
    ("Who first described the zorblax?", "The botanist Elina Marsk in 1843", ["Newton", "Nobody", "A cat"]),
]
PARITY_TOL = 1e-3  # measured |Δ| packed vs one-by-one log-likelihood: ~2e-5 nats (fp32, SDPA, 2 layers)


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("eval-inputs")
    train = []
    for i, (q, a, _) in enumerate(FACTS):
        msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}]
        train.append({"id": f"t{i}", "messages": [*msgs, {"role": "assistant", "content": a}],
                      "metadata": json.dumps({"leaf": LEAF})})  # fmt: skip
    mcq_rows: list[Any] = [
        {"id": f"m{i}", "leaf": LEAF, "question": q, "choices": [*w[:i % 4], a, *w[i % 4:]][:4], "answer": i % 4,
         "context": None}
        for i, (q, a, w) in enumerate(FACTS)
    ]  # fmt: skip
    mcq_rows += [
        {"id": "m-other", "leaf": OTHER, "question": "What is a quux?", "choices": ["A bird", "A stone", "A tool",
         "A song"], "answer": 1, "context": "A quux is a small grey stone."},
        '{"id": "broken", "leaf": ',  # malformed JSON
        {"id": "bad-answer", "leaf": LEAF, "question": "q?", "choices": ["a", "b"], "answer": 5},
    ]  # fmt: skip
    held = [
        {"id": f"h{i}", "leaf": LEAF, "type": "knowledge", "question": q, "answer": a, "context": None}
        for i, (q, a, _) in enumerate(FACTS)
    ]
    held.append({"id": "h-other", "leaf": OTHER, "type": "knowledge", "question": "What is a quux? UNRATABLE",
                 "answer": "A small grey stone.", "context": "A quux is a small grey stone."})  # fmt: skip
    return {
        "train": _jsonl(d / "knowledge_train_msgs.jsonl", train),
        "mcq": _jsonl(d / "mcq.jsonl", mcq_rows),
        "held_out": _jsonl(d / "held_out.jsonl", held),
        "general": write_msgs(d / "general.jsonl", 8, seed=7),
    }


@pytest.fixture(scope="module")
def trained(train_model: Path, inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A two-phase run: ``general`` (chat on the general file's vocabulary: the base model of the evaluation, since
    the truncated SmolLM2 itself is worse than uniform on everything), then ``knowledge`` (the facts, at a high rate,
    long enough to forget some of the general material: the tuned model); checkpoints samples_24 and final."""
    out = tmp_path_factory.mktemp("tuned-run")
    general = write_msgs(out / "general_train.jsonl", 12, seed=1)
    cfg = TrainConfig.model_validate(
        {"model_path": str(train_model), "output_dir": str(out), "max_seq_len": 256, "max_batch_len": 1024,
         "checkpoint_every": 24, "seed": 3,
         "phases": [
             {"name": "general", "data_path": str(general), "lr": 2e-3, "epochs": 2, "effective_batch_size": 6,
              "scheduler": "constant"},
             {"name": "knowledge", "data_path": str(inputs["train"]), "lr": 2e-3, "epochs": 8,
              "effective_batch_size": 6, "scheduler": "constant"}]}
    )  # fmt: skip
    assert run_training(cfg, handle_sigterm=False)["status"] == "Succeeded"
    yield out
    shutil.rmtree(out, ignore_errors=True)


def _base(trained: Path) -> Path:
    return trained / "phases" / "general" / "final"


def _tuned(trained: Path) -> Path:
    return trained / "phases" / "knowledge" / "final"


class _Judge(BaseHTTPRequestHandler):
    """OpenAI chat completions with a rule for a brain: the share of reference words in the answer, 1-10 in the
    MT-Bench format or 1-5 in the DK-Bench one (told apart by the system prompt), after a reason that says the
    share; no rating at all for questions marked UNRATABLE."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["messages"][-1]["content"]
        ref = re.search(r"Reference Answer\]\n(.*?)\n\[The End", text, re.S).group(1)  # type: ignore[union-attr]
        ans = re.search(r"Assistant's Answer\]\n(.*?)\n\[The End", text, re.S).group(1)  # type: ignore[union-attr]
        words = set(re.findall(r"\w+", ref.lower()))
        hit = len(words & set(re.findall(r"\w+", ans.lower()))) / len(words)
        reason = f"The answer has {round(100 * hit)}% of the reference's words."
        if "UNRATABLE" in text:
            reply = "I cannot judge this."
        elif '"Score: N"' in body["messages"][0]["content"]:
            reply = f"{reason}\nScore: {1 + round(4 * hit)}"
        else:
            reply = f"{reason} Rating: [[{1 + round(9 * hit)}]]"
        out = json.dumps({
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def judge_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Judge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def _config(tmp: Path, base: Path, tuned: Path, inputs: dict[str, Path], **over: Any) -> dict[str, Any]:
    return {
        "job": {"namespace": "ns", "name": "ft"},
        "baseModel": str(base),
        "tunedModel": str(tuned),
        "data": {"knowledge": str(inputs["train"])},
        "phaseDir": str(tmp / "phase"),
        "reportDir": str(tmp / "evaluation"),
        "evaluation": {"enabled": True, "checkpointSelection": "final", "maxQuestions": 50},
        "multipleChoice": str(inputs["mcq"]),
        "heldOut": str(inputs["held_out"]),
        "general": [str(inputs["general"])],
        "judge": None,
    } | over


def _run(tmp: Path, cfg: dict[str, Any], *extra: str) -> tuple[int, dict[str, Any], str]:
    path = tmp / "cfg.json"
    path.write_text(json.dumps(cfg))
    tlog = tmp / "termination-log"
    tlog.unlink(missing_ok=True)
    rc = cli(["evaluate", "--config", str(path), f"--termination-log={tlog}", *extra])
    raw = tlog.read_text() if tlog.exists() else ""
    return rc, (json.loads(raw) if raw else {}), raw


@pytest.fixture(scope="module")
def evaluated(
    trained: Path, inputs: dict[str, Path], judge_url: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], dict[str, Any], str]:
    tmp = tmp_path_factory.mktemp("evaluate")
    judge = {"kind": "endpoint", "url": judge_url, "model": "rule-judge", "maxConcurrency": 4}
    rc, term, raw = _run(tmp, _config(tmp, _base(trained), _tuned(trained), inputs, judge=judge))
    assert rc == 0, raw
    report = json.loads(Path(term["report"]).read_text())
    assert (Path(term["report"]).parent / "evaluation.md").is_file()
    return report, term, raw


def test_measures_move_the_right_way(evaluated: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    report, term, _ = evaluated
    m = report["measures"]
    base_mcq, tuned_mcq = m["mcq"]["base"]["per_leaf"][LEAF], m["mcq"]["tuned"]["per_leaf"][LEAF]
    assert tuned_mcq["accuracy"] > base_mcq["accuracy"]
    assert tuned_mcq["accuracy"] >= 5 / 6
    assert m["held_out"]["tuned"]["per_leaf"][LEAF]["loss"] < m["held_out"]["base"]["per_leaf"][LEAF]["loss"] - 1.0
    assert m["judge"]["tuned"]["mean_rating"] > m["judge"]["base"]["mean_rating"]
    assert report["tuned_score"] > report["base_score"]
    assert report["score_components"] == ["mcq_accuracy", "held_out_likelihood", "judge"]
    # forgetting: general loss and the unseen leaf's held-out loss, tuned − base; narrow training at a high rate
    # makes the model worse on them
    assert report["forgetting_delta"] is not None and report["forgetting_delta"] > 0
    assert report["forgetting_delta"] == pytest.approx(m["retention_loss"]["tuned"] - m["retention_loss"]["base"])
    assert m["unseen_leaves"]["base"]["mcq"]["n"] == 1  # OTHER is not in the training data's metadata
    # inputs: 7 valid MCQ rows, 2 malformed skipped and counted; the judge could not rate the UNRATABLE item
    assert report["inputs"]["multiple_choice"] | {"path": None} == {
        "path": None, "used": 7, "valid": 7, "malformed": 2}  # fmt: skip
    assert report["inputs"]["system_prompt"] == SYSTEM
    for who in ("base", "tuned"):
        assert m["judge"][who]["unparseable"] == 1 and m["judge"][who]["n"] == 6
    assert term["base_score"] == pytest.approx(report["base_score"], abs=1e-6)


def _held_out_ids(report: dict[str, Any]) -> list[str]:
    return [a["id"] for a in report["answers"]]


def test_judged_answers_keep_the_judges_reason(evaluated: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    report, term, _ = evaluated
    # with a judge every held-out item is answered; the examples (knowledge leaves, one per leaf in turn) come first
    assert _held_out_ids(report) == ["h0", "h-other", "h1", "h2", "h3", "h4", "h5"]
    assert [a["example"] for a in report["answers"]] == [True] * 3 + [False] * 4
    by_id = {a["id"]: a for a in report["answers"]}
    assert by_id["h0"]["question"] == FACTS[0][0] and by_id["h0"]["reference"] == FACTS[0][1]
    assert by_id["h0"]["leaf"] == LEAF and by_id["h-other"]["context"] == "A quux is a small grey stone."
    for a in report["answers"]:
        for who in ("base", "tuned"):
            got = a[who]
            assert isinstance(got["answer"], str)
            if a["id"] == "h-other":  # the judge gave no rating: its reply is kept as the reason
                assert got["rating"] is None and got["reason"] == "I cannot judge this."
            else:
                assert 1 <= got["rating"] <= 10
                assert re.fullmatch(r"The answer has \d+% of the reference's words\.", got["reason"]), got["reason"]
    judge = report["measures"]["judge"]
    assert judge["tuned"]["style"] == "mt-bench" and judge["tuned"]["scale"] == [1, 10]
    ratings = [by_id[f"h{i}"]["tuned"]["rating"] for i in range(6)]
    assert judge["tuned"]["mean_rating"] == pytest.approx(sum(ratings) / 6)
    assert "judge" not in report["items"]  # the answers moved to report["answers"]
    md = (Path(term["report"]).parent / "evaluation.md").read_text()
    assert "## Example answers" in md and "| judge rating (1-10) |" in md
    assert f"**Question:** {md_escape(FACTS[0][0])}" in md and "*Judge:* The answer has" in md
    assert "4 more answered items in evaluation.json" in md
    assert "answers" not in term  # the termination message stays small


@pytest.fixture(scope="module")
def plain(
    trained: Path, inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The evaluation without a judge, two examples."""
    tmp = tmp_path_factory.mktemp("evaluate-plain")
    cfg = _config(tmp, _base(trained), _tuned(trained), inputs)
    cfg["evaluation"] |= {"examples": 2}
    rc, term, raw = _run(tmp, cfg)
    assert rc == 0, raw
    return json.loads(Path(term["report"]).read_text()), term, raw


def test_examples_are_answered_without_a_judge(
    plain: tuple[dict[str, Any], dict[str, Any], str], evaluated: tuple[dict[str, Any], dict[str, Any], str]
) -> None:
    report, term, raw = plain
    assert _held_out_ids(report) == ["h0", "h-other"]
    judged = {a["id"]: a for a in evaluated[0]["answers"]}
    for a in report["answers"]:
        assert a["example"] is True
        for who in ("base", "tuned"):
            assert a[who]["rating"] is None and a[who]["reason"] is None
            # greedy: the same answers as the judged run's
            assert isinstance(a[who]["answer"], str) and a[who]["answer"] == judged[a["id"]][who]["answer"]
    # the trained facts show: the tuned model answers the zorblax question with (some of) the reference's words
    assert "purple" in report["answers"][0]["tuned"]["answer"].lower()  # measured: "Purple with silver spots all over"
    assert report["measures"]["judge"] == {"base": None, "tuned": None}
    assert report["score_components"] == ["mcq_accuracy", "held_out_likelihood"]
    md = (Path(term["report"]).parent / "evaluation.md").read_text()
    assert "## Example answers" in md and "no judge configured" in md and "*Judge:*" not in md
    assert "### 2. `knowledge/other/quux`" in md and "more answered items" not in md
    assert len(raw.encode()) <= 4096 and set(term) == set(evaluated[1])


def test_dk_bench_judge_rates_1_to_5(trained: Path, inputs: dict[str, Path], judge_url: str, tmp_path: Path) -> None:
    judge = {"kind": "endpoint", "url": judge_url, "model": "rule-judge", "style": "dk-bench"}
    cfg = _config(tmp_path, _base(trained), _tuned(trained), inputs, judge=judge, general=[])
    cfg["evaluation"] |= {"examples": 1}
    rc, term, raw = _run(tmp_path, cfg)
    assert rc == 0, raw
    report = json.loads(Path(term["report"]).read_text())
    m = report["measures"]
    for who in ("base", "tuned"):
        assert m["judge"][who]["style"] == "dk-bench" and m["judge"][who]["scale"] == [1, 5]
        assert m["judge"][who]["n"] == 6 and m["judge"][who]["unparseable"] == 1
    assert m["judge"]["tuned"]["mean_rating"] > m["judge"]["base"]["mean_rating"]
    rated = [a[w] for a in report["answers"] for w in ("base", "tuned") if a[w]["rating"] is not None]
    assert len(rated) == 12 and all(r["rating"] in (1, 2, 3, 4, 5) and r["reason"] for r in rated)
    assert [a["example"] for a in report["answers"]].count(True) == 1
    # the judge component is rating / 5: the score is the mean of the three components
    t = m["mcq"]["tuned"]["accuracy"], math.exp(-m["held_out"]["tuned"]["loss"]), m["judge"]["tuned"]["mean_rating"] / 5
    assert report["tuned_score"] == pytest.approx(sum(t) / 3)
    assert term["measures"]["judge_rating"]["tuned"] == pytest.approx(m["judge"]["tuned"]["mean_rating"], abs=1e-4)
    md = (tmp_path / "evaluation" / "evaluation.md").read_text()
    assert "| judge rating (1-5) |" in md and "dk-bench, scale 1-5" in md


def test_termination_message_is_what_the_operator_reads(evaluated: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    _, term, raw = evaluated
    assert len(raw.encode()) <= 4096
    assert {"report", "base_score", "tuned_score", "forgetting_delta", "measures"} <= term.keys()
    assert isinstance(term["base_score"], float) and isinstance(term["tuned_score"], float)
    assert set(term["measures"]) >= {"mcq_accuracy", "held_out_loss", "judge_rating", "retention_loss"}


def test_mcq_loglikelihood_matches_a_hand_computation(train_model: Path) -> None:
    item = MCQ("x", LEAF, FACTS[0][0], ("Purple with silver spots all over", "Red", "Blue", "Green"), 0, "ctx")
    lm = LM.load(str(train_model))
    got = mcq(lm, [item, item], SYSTEM).loglik[1]
    assert got is not None
    tok = lm.tokenizer
    prompt = tok.apply_chat_template(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"ctx\n\n{item.question}"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    for choice, ll, sample in zip(item.choices, got, mcq_samples(tok, item, SYSTEM), strict=True):
        # the choice's tokens are exactly what the whole text adds to the prompt (its trailing newline included)
        n_prompt = len(tok(prompt.rstrip(), add_special_tokens=False)["input_ids"])
        assert sample.input_ids == tok(prompt + choice, add_special_tokens=False)["input_ids"]
        assert sample.labels[:n_prompt] == [IGNORE] * n_prompt and IGNORE not in sample.labels[n_prompt:]
        ids = torch.tensor([sample.input_ids])
        with torch.no_grad():
            logp = torch.log_softmax(lm.model(ids).logits[0].double(), -1)
        hand = sum(logp[t - 1, sample.input_ids[t]].item() for t in range(n_prompt, len(sample.input_ids)))
        assert ll == pytest.approx(hand, abs=PARITY_TOL)
    assert mcq(lm, [item], SYSTEM).predicted(0) == max(range(4), key=lambda k: got[k])


def test_select_picks_the_best_checkpoint(trained: Path, inputs: dict[str, Path], tmp_path: Path) -> None:
    # a phase whose final checkpoint has not learned the facts and whose samples_12 has
    phase = tmp_path / "run" / "phases" / "knowledge"
    phase.mkdir(parents=True)
    (phase / "samples_12").symlink_to(_tuned(trained), target_is_directory=True)
    (phase / "final").symlink_to(_base(trained), target_is_directory=True)
    (phase / "samples_6").mkdir()  # not committed (no config.json): ignored
    selected, export = tmp_path / "run" / "selected", tmp_path / "out" / "model"
    selected.mkdir()
    (selected / "stale.txt").write_text("from an earlier attempt")
    cfg = {
        "job": {"namespace": "ns", "name": "ft", "phase": "knowledge"},
        "checkpointsDir": str(tmp_path / "run"),
        "selectedDir": str(selected),
        "exportDir": str(export),
        "data": str(inputs["train"]),
        "evaluation": {"enabled": True, "checkpointSelection": "best", "maxQuestions": 50},
        "multipleChoice": str(inputs["mcq"]),
        "heldOut": str(inputs["held_out"]),
        "general": [],
        "judge": None,
    }
    rc, term, raw = _run(tmp_path, cfg, "--select-checkpoint")
    assert rc == 0, raw
    assert len(raw.encode()) <= 4096
    assert term["selected"] == str(selected)
    assert set(term["scores"]) == {"samples_12", "final"}
    assert term["scores"]["samples_12"] > term["scores"]["final"]
    assert term["best_checkpoint"] == str(phase / "samples_12")
    for d in (selected, export):
        assert not (d / "stale.txt").exists()
        assert (d / "model.safetensors").read_bytes() == (_tuned(trained) / "model.safetensors").read_bytes()
    leftovers = [p.name for p in (selected.parent.iterdir()) if p.name.startswith((".tmp-", ".old-"))]
    assert leftovers == []
    assert json.loads((tmp_path / "run" / "selection.json").read_text())["scores"].keys() == {"samples_12", "final"}


def test_checkpoint_order_and_tie_breaks(trained: Path) -> None:
    assert best({"samples_12": 0.5, "samples_24": 0.7, "final": 0.7}, ["samples_12", "samples_24", "final"]) == "final"
    assert best({"samples_12": 0.9, "final": None}, ["samples_12", "final"]) == "samples_12"
    assert best({"samples_12": None, "final": None}, ["samples_12", "final"]) == "final"
    assert [p.name for p in checkpoints(trained, "knowledge")] == ["samples_24", "final"]  # the trainer's layout


def test_missing_inputs_give_nulls(train_model: Path, tmp_path: Path, inputs: dict[str, Path]) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    cfg = _config(tmp_path, train_model, train_model, inputs, multipleChoice=str(tmp_path / "absent.jsonl"),
                  heldOut=None, general=[str(tmp_path / "empty.jsonl")])  # fmt: skip
    rc, term, raw = _run(tmp_path, cfg)
    assert rc == 0, raw
    assert term["base_score"] is None and term["tuned_score"] is None and term["forgetting_delta"] is None
    report = json.loads(Path(term["report"]).read_text())
    assert report["measures"]["mcq"] == {"base": None, "tuned": None}
    assert report["measures"]["general"] == {str(tmp_path / "empty.jsonl"): {"base": None, "tuned": None}}
    assert "| MCQ accuracy | — | — | — |" in (tmp_path / "evaluation" / "evaluation.md").read_text()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"baseModel": None}, "baseModel"),
        ({"evaluation": {"maxQuestions": 0}}, "maxQuestions"),
        ({"judge": {"kind": "magic"}}, "judge"),
        ({"tunedModel": "/nonexistent/model"}, "tunedModel /nonexistent/model is not a Hugging Face model"),
    ],
)
def test_bad_config_exits_2(
    train_model: Path, tmp_path: Path, inputs: dict[str, Path], change: dict[str, Any], message: str
) -> None:
    cfg = {k: v for k, v in (_config(tmp_path, train_model, train_model, inputs) | change).items() if v is not None}
    rc, term, _ = _run(tmp_path, cfg)
    assert rc == 2
    assert term["reason"] == "InvalidInput" and message in term["message"]


def test_unreadable_config_and_select_without_checkpoints_exit_2(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    assert cli(["evaluate", "--config", str(tmp_path / "bad.json")]) == 2
    cfg = {"job": {"phase": "p"}, "checkpointsDir": str(tmp_path), "selectedDir": str(tmp_path / "sel")}
    rc, term, _ = _run(tmp_path, cfg, "--select-checkpoint")
    assert rc == 2 and "no checkpoints" in term["message"]
    rc, term, _ = _run(tmp_path, {"checkpointsDir": "/x", "selectedDir": "/y"}, "--select-checkpoint")
    assert rc == 2 and "job.phase" in term["message"]


def test_input_rows_are_validated_and_subsampled_deterministically(tmp_path: Path) -> None:
    rows = [{"id": f"r{i}", "leaf": f"l{i % 3}", "question": "q?", "choices": ["a", "b"], "answer": i % 2}
            for i in range(20)]  # fmt: skip
    path = _jsonl(tmp_path / "m.jsonl", [*rows, {"id": "x", "leaf": "l", "question": "q", "choices": ["a"]}])
    a, b = load_jsonl(str(path), parse_mcq, 5), load_jsonl(str(path), parse_mcq, 5)
    assert [r.id for r in a.rows] == [r.id for r in b.rows] and len(a.rows) == 5
    assert a.total == 20 and a.malformed == 1
    assert [r.id for r in a.rows] == sorted((r.id for r in a.rows), key=lambda s: int(s[1:]))  # file order


def test_judge_ratings_are_parsed_strictly() -> None:
    assert parse_rating("Good answer. Rating: [[7]]") == 7.0
    assert parse_rating("[[ 8.5 ]]") == 8.5
    assert parse_rating("Rating: [[7]] ... final: [[7]]") == 7.0
    for bad in (None, "", "Rating: 7", "[[0]]", "[[11]]", "[[3]] or [[4]]", "[[seven]]"):
        assert parse_rating(bad) is None


# judge replies as real judges write them (GPT-4-style MT-Bench grading, a DK-Bench-style rubric reply)
MT_REPLY = """The assistant's answer is partially correct. The reference answer states that the zorblax is purple with
silver spots, while the assistant says it is purple but does not mention the spots.

Corrected answer: purple with silver spots all over.

Rating: [[6]]"""
DK_REPLY = """The response names the right colour (purple) but leaves out the silver spots, which the reference
answer gives as a defining feature. Nothing in it contradicts the reference.

**Score:** 4"""


def test_judge_replies_give_a_rating_and_a_reason() -> None:
    assert parse_rating(MT_REPLY) == 6.0
    assert parse_reason(MT_REPLY) == MT_REPLY[: MT_REPLY.index("Rating:")].strip()
    assert parse_rating(DK_REPLY, "dk-bench") == 4.0 and parse_rating(DK_REPLY) is None  # each style its format
    reason = parse_reason(DK_REPLY, "dk-bench")
    assert reason is not None and reason.startswith("The response names") and reason.endswith("the reference.")
    assert parse_reason("Rating: [[7]]") is None  # nothing before the rating
    assert parse_reason("no rating here, sorry") == "no rating here, sorry"  # the whole reply when unrated
    long = parse_reason("x" * 2000 + " Rating: [[3]]")
    assert long is not None and len(long) == REASON_MAX_CHARS and long.endswith("…")
    assert parse_rating("Explanation.\nScore: 5/5", "dk-bench") == 5.0
    assert parse_rating("score = 2", "dk-bench") == 2.0


def test_dk_bench_ratings_are_parsed_strictly() -> None:
    for bad in (None, "", "Score: 0", "Score: 6", "Score: -1", "Score: 10/10", "Score: 4.5", "Score: four",
                "Score: 3 ... on reflection, Score: 4", "I would rate it 4 out of 5.", "Rating: [[4]]"):  # fmt: skip
        assert parse_rating(bad, "dk-bench") is None, bad
    assert parse_rating("Score: 3\nFinal score: 3", "dk-bench") == 3.0  # repeated, not ambiguous


def test_markdown_escaping_keeps_model_text_literal() -> None:
    assert md_escape("a *b* _c_ <d> [e](f) |g| `h`") == r"a \*b\* \_c\_ \<d\> \[e\](f) \|g\| \`h\`"
    assert md_escape("# title\n- item\n2. step\n  + sub") == "\\# title\n\\- item\n2\\. step\n  \\+ sub"


def _train_knowledge(base: Path, data: Path, out: Path, lr: float) -> Path:
    """One short knowledge phase (4 steps of the 6 facts) from ``base``; its final checkpoint."""
    cfg = TrainConfig.model_validate(
        {"model_path": str(base), "output_dir": str(out), "max_seq_len": 256, "max_batch_len": 1024, "seed": 3,
         "phases": [{"name": "knowledge", "data_path": str(data), "lr": lr, "epochs": 4, "effective_batch_size": 6,
                     "scheduler": "constant"}]}
    )  # fmt: skip
    assert run_training(cfg, handle_sigterm=False)["status"] == "Succeeded"
    return out / "phases" / "knowledge" / "final"


def test_the_quality_gate_promotes_a_good_run_and_rejects_a_bad_one(
    trained: Path, inputs: dict[str, Path], tmp_path: Path
) -> None:
    """Two real runs from the same base, evaluated by the real command, judged by the operator's own code: its
    termination-message parser and its gate."""
    from labrador_operator.api.finetune import Gate
    from labrador_operator.reconcile.finetune import finetune_gate
    from labrador_operator.reconcile.results import EvaluateResult, lenient

    base = _base(trained)
    # measured (CPU, fp32, seed 3): good held-out loss 15.47 -> 2.98 (+12.5), MCQ 0.14 -> 0.43, forgetting +1.0;
    # bad (lr 1.0) held-out loss 15.47 -> 463, MCQ 0.14 -> 0.14, forgetting +1018
    gate = Gate.model_validate({"minHeldOutLossImprovement": 1.0, "minMcqAccuracyGain": 0.0, "maxForgetting": 2.0})
    verdicts, numbers = {}, {}
    for name, lr in (("good", 2e-3), ("bad", 1.0)):
        tuned = _train_knowledge(base, inputs["train"], tmp_path / f"{name}-run", lr)
        d = tmp_path / f"{name}-eval"
        d.mkdir()
        cfg = _config(d, base, tuned, inputs)
        cfg["evaluation"] |= {"examples": 0}
        rc, _, raw = _run(d, cfg)
        assert rc == 0, raw
        result = lenient(EvaluateResult, json.loads(raw))  # what reconcile/finetune.py does with the message
        assert result.measures is not None and result.measures.held_out_loss is not None, raw
        verdicts[name] = finetune_gate(gate, result)
        numbers[name] = (result.measures.held_out_loss, result.measures.mcq_accuracy, result.forgetting_delta)
        print(f"{name} (lr {lr}): {numbers[name]}; {verdicts[name].message}")
    assert verdicts["good"].promoted and verdicts["good"].reason == "GatePassed", verdicts["good"].message
    assert not verdicts["bad"].promoted and verdicts["bad"].reason == "GateFailed", verdicts["bad"].message
    (good_loss, good_mcq, good_forgetting), (bad_loss, _, bad_forgetting) = numbers["good"], numbers["bad"]
    assert good_loss.base is not None and good_loss.tuned is not None and bad_loss.tuned is not None
    assert good_loss.base - good_loss.tuned > 5.0  # measured +12.5
    assert bad_loss.tuned > good_loss.base + 50  # measured 463 vs 15.5: worse than not training at all
    assert good_mcq is not None and (good_mcq.tuned or 0) > (good_mcq.base or 0)
    assert good_forgetting is not None and bad_forgetting is not None and bad_forgetting > 10 * good_forgetting
    # the message carries the numbers: both losses and the failed checks
    said = verdicts["bad"].message
    assert f"held-out loss {bad_loss.base:.4g} -> {bad_loss.tuned:.4g}" in said and "needs >= 1): failed" in said
    assert f"forgetting {bad_forgetting:+.4g} (needs <= 2): failed" in said
