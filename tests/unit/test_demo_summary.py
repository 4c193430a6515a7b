"""hack/demo.py's summary of the evaluation: the first knowledge leaf's question, reference and both models' answers
side by side (pure: a report dict in, lines out; no cluster)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import load_script

demo = load_script("labrador_hack_demo", "hack/demo.py")

REPORT: dict[str, Any] = {
    "answers": [
        {"leaf": "compositional_skills/writing/haiku", "type": "freeform_skill", "question": "Write a haiku.",
         "reference": "...", "base": {"answer": "skill", "rating": None, "reason": None},
         "tuned": {"answer": "skill", "rating": None, "reason": None}},
        {"leaf": "knowledge/fruit/zorblax", "type": "knowledge", "question": "What colour is the zorblax fruit?",
         "reference": "Purple with silver spots all over.",
         "base": {"answer": "The zorblax is a kind of small red berry that grows in many gardens across the "
                            "northern hemisphere and is loved by birds.", "rating": 2.0, "reason": "wrong"},
         "tuned": {"answer": "Purple\nwith silver spots.", "rating": 9.0, "reason": "right"}},
    ]
}  # fmt: skip


def test_side_by_side_shows_the_first_knowledge_answer_in_two_columns() -> None:
    lines = demo.side_by_side(REPORT, width=72)
    text = "\n".join(lines)
    assert all(len(line) <= 72 for line in lines), text
    assert lines[0].split() == ["example", "answer", "knowledge/fruit/zorblax"]
    assert "question        What colour is the zorblax fruit?" in text
    assert "reference       Purple with silver spots all over." in text
    assert "skill" not in text  # the skill leaf comes first in the report but is not a knowledge leaf
    rows = [[half.strip() for half in line.split(" |", 1)] for line in lines if " |" in line]
    assert rows[0] == ["base (rating 2)", "tuned (rating 9)"]
    left = " ".join(r[0] for r in rows[2:])
    right = " ".join(r[1] for r in rows[2:] if r[1])
    assert left.startswith("The zorblax is a kind of small red berry") and left.endswith("loved by birds.")
    assert right.strip() == "Purple with silver spots."  # whitespace folded, wrapped to its column
    assert len(rows) > 3  # the long base answer wraps over several lines, the short tuned one leaves them blank


def test_side_by_side_tolerates_old_or_empty_reports(tmp_path: Path) -> None:
    assert demo.side_by_side({}) == []
    assert demo.side_by_side({"answers": [REPORT["answers"][0]]}) == []  # no knowledge leaf
    unjudged = {"answers": [{"leaf": "knowledge/x", "question": "q?", "base": {"answer": None}, "tuned": {}}]}
    lines = demo.side_by_side(unjudged, width=60)
    assert "(no answer)" in "\n".join(lines) and "rating" not in "\n".join(lines)
    assert demo.read_report(tmp_path / "absent.json") == {}
    (tmp_path / "old.json").write_text(json.dumps({"base_score": 0.1}))
    assert demo.side_by_side(demo.read_report(tmp_path / "old.json")) == []
    (tmp_path / "bad.json").write_text("{not json")
    assert demo.read_report(tmp_path / "bad.json") == {}


def test_the_summary_prints_the_answers_from_the_report_on_the_host(tmp_path: Path) -> None:
    report = tmp_path / "models" / "ns" / "ft" / "evaluation.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps(REPORT))
    summary = demo.Summary(revision="abc", leaves={}, generated=0, kept=0, knowledge_samples=0, skills_samples=0,
                           phase_loss={}, teacher_dtype=None, phase_dtype={}, base_score=None, tuned_score=None,
                           forgetting_delta=None, model="m", report="/workspace/models/ns/ft/evaluation.json",
                           wall_seconds=1.0)  # fmt: skip
    assert "What colour is the zorblax fruit?" in summary.text(tmp_path)
    report.unlink()
    assert "example answer" not in summary.text(tmp_path)  # a missing report prints nothing
