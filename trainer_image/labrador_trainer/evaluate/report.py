"""Per-model summaries, the aggregate score, forgetting, and the reports: evaluation.json, evaluation.md, and the
termination message (<= 4 KiB) the operator reads."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from labrador_trainer.evaluate.measures import NLL
from labrador_trainer.evaluate.pipeline import ModelScores, Plan
from labrador_trainer.files import atomic_write_json, atomic_write_text

COMPONENTS = ("mcq_accuracy", "held_out_likelihood", "judge")
SCORE_FORMULA = (
    "mean of the components present for every model compared: mcq_accuracy; "
    "held_out_likelihood = exp(-held-out loss per token); judge = mean judge rating / the judge's scale maximum "
    "(10 mt-bench, 5 dk-bench)"
)
TERMINATION_LIMIT = 4096


def summarize(ms: ModelScores, plan: Plan) -> dict[str, Any]:
    """Every measure of one model as plain JSON (None where the input was missing or empty)."""
    unseen_mcq = plan.unseen(plan.mcq.rows)
    unseen_ho = plan.unseen(plan.held_out.rows)
    return {
        "path": ms.path,
        "mcq": ms.mcq.summary() if ms.mcq else None,
        "held_out": ms.held_out.summary() if ms.held_out else None,
        "judge": ms.judged.summary() if ms.judged else None,
        "general": {
            g.path or f"general[{k}]": (r.summary() if r else None)
            for k, (g, r) in enumerate(zip(plan.general, ms.general, strict=True))
        },
        "unseen_leaves": {
            "mcq": ms.mcq.summary(unseen_mcq) if ms.mcq and unseen_mcq else None,
            "held_out": ms.held_out.summary(unseen_ho) if ms.held_out and unseen_ho else None,
        },
        "retention_loss": retention_loss(ms, plan),
        "seconds": ms.seconds,
    }


def retention_loss(ms: ModelScores, plan: Plan) -> float | None:
    """Loss per token on material the run did not train on: the general files and the held-out answers of leaves
    the training data does not name, token-weighted together (None when there is none)."""
    parts: list[NLL] = [r for res in ms.general if res for r in res.nll if r is not None and r.tokens]
    if ms.held_out:
        parts += [r for i in plan.unseen(plan.held_out.rows) if (r := ms.held_out.nll[i]) is not None and r.tokens]
    tokens = sum(p.tokens for p in parts)
    return sum(p.nll for p in parts) / tokens if tokens else None


def components(summary: dict[str, Any]) -> dict[str, float]:
    """The aggregate's components of one model, each in [0, 1], higher is better."""
    out: dict[str, float] = {}
    if summary["mcq"]:
        out["mcq_accuracy"] = summary["mcq"]["accuracy"]
    if summary["held_out"]:
        out["held_out_likelihood"] = math.exp(-summary["held_out"]["loss"])
    if summary["judge"]:
        out["judge"] = summary["judge"]["mean_rating"] / _scale_max(summary["judge"])
    return out


def _scale_max(judge: dict[str, Any]) -> float:
    scale = judge.get("scale") or [1, 10]
    return float(scale[1])


def scores(summaries: dict[str, dict[str, Any]]) -> tuple[list[str], dict[str, float | None]]:
    """(components used, aggregate score per model): the mean of the components every model has."""
    comps = {name: components(s) for name, s in summaries.items()}
    used = [c for c in COMPONENTS if comps and all(c in cs for cs in comps.values())]
    return used, {name: (sum(cs[c] for c in used) / len(used) if used else None) for name, cs in comps.items()}


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def build_report(job: dict[str, Any], plan: Plan, base: ModelScores, tuned: ModelScores) -> dict[str, Any]:
    sb, st = summarize(base, plan), summarize(tuned, plan)
    used, agg = scores({"base": sb, "tuned": st})
    general = {path: {"base": sb["general"][path], "tuned": st["general"][path]} for path in sb["general"]}
    report: dict[str, Any] = {
        "job": job,
        "score_formula": SCORE_FORMULA,
        "score_components": used,
        "base_score": agg["base"],
        "tuned_score": agg["tuned"],
        "forgetting_delta": _delta(sb["retention_loss"], st["retention_loss"]),
        "measures": {
            "mcq": {"base": sb["mcq"], "tuned": st["mcq"]},
            "held_out": {"base": sb["held_out"], "tuned": st["held_out"]},
            "judge": {"base": sb["judge"], "tuned": st["judge"]},
            "general": general,
            "unseen_leaves": {"base": sb["unseen_leaves"], "tuned": st["unseen_leaves"]},
            "retention_loss": {"base": sb["retention_loss"], "tuned": st["retention_loss"]},
        },
        "models": {"base": base.path, "tuned": tuned.path},
        "seconds": {"base": base.seconds, "tuned": tuned.seconds},
        "inputs": plan.stats(),
        "items": _items(plan, base, tuned),
        "answers": answers(plan, base, tuned),
    }
    return report


def _answer(ms: ModelScores, i: int) -> dict[str, Any]:
    j = ms.judged
    return {
        "answer": (ms.answers or {}).get(i),
        "rating": j.ratings[i] if j else None,
        "reason": j.reasons[i] if j else None,
    }


def answers(plan: Plan, base: ModelScores, tuned: ModelScores) -> list[dict[str, Any]]:
    """Both models' greedy answers to every answered held-out item, with the judge's rating and reason (None
    without a judge): the examples first, in the order they were picked, then the rest in file order."""
    asked = set((base.answers or {}).keys()) | set((tuned.answers or {}).keys())
    examples = [i for i in plan.examples if i in asked]
    out = []
    for i in [*examples, *(i for i in sorted(asked) if i not in set(examples))]:
        it = plan.held_out.rows[i]
        out.append(
            {
                "id": it.id,
                "leaf": it.leaf,
                "type": it.type,
                "example": i in examples,
                "question": it.question,
                "context": it.context,
                "reference": it.answer,
                "base": _answer(base, i),
                "tuned": _answer(tuned, i),
            }
        )
    return out


def _items(plan: Plan, base: ModelScores, tuned: ModelScores) -> dict[str, list[dict[str, Any]]]:
    """Per MCQ item: both models' predicted choice (the held-out answers are in ``answers``)."""
    mcq_rows = []
    if base.mcq and tuned.mcq:
        for i, it in enumerate(plan.mcq.rows):
            mcq_rows.append(
                {"id": it.id, "leaf": it.leaf, "answer": it.answer, "base": base.mcq.predicted(i),
                 "tuned": tuned.mcq.predicted(i)}
            )  # fmt: skip
    return {"mcq": mcq_rows}


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def termination(report: dict[str, Any], path: str) -> dict[str, Any]:
    """The small summary for the operator: report path, scores, forgetting delta and headline measures."""
    m = report["measures"]

    def pair(measure: str, key: str) -> dict[str, float | None] | None:
        b, t = m[measure]["base"], m[measure]["tuned"]
        if b is None and t is None:
            return None
        return {"base": _r(b and b.get(key)), "tuned": _r(t and t.get(key))}

    general = m["retention_loss"]
    small = {
        "mcq_accuracy": pair("mcq", "accuracy"),
        "held_out_loss": pair("held_out", "loss"),
        "judge_rating": pair("judge", "mean_rating"),
        "retention_loss": None
        if general["base"] is None
        else {"base": _r(general["base"]), "tuned": _r(general["tuned"])},
        "components": report["score_components"],
    }
    return fit(
        {
            "status": "Succeeded",
            "report": path,
            "base_score": _r(report["base_score"], 6),
            "tuned_score": _r(report["tuned_score"], 6),
            "forgetting_delta": _r(report["forgetting_delta"], 6),
            "measures": small,
        }
    )


def fit(summary: dict[str, Any], limit: int = TERMINATION_LIMIT) -> dict[str, Any]:
    """Drop optional keys until the JSON fits the termination-message limit."""
    out = dict(summary)
    for key in ("measures", "checkpoints", "scores"):
        if len(json.dumps(out, separators=(",", ":")).encode()) <= limit:
            break
        out.pop(key, None)
    return out


def _fmt(x: Any, nd: int = 4) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def markdown(report: dict[str, Any]) -> str:
    m = report["measures"]
    job = report.get("job") or {}
    title = "/".join(str(job[k]) for k in ("namespace", "name") if job.get(k)) or "model"
    lines = [
        f"# Evaluation: {title}",
        "",
        f"- base: `{report['models']['base']}`",
        f"- tuned: `{report['models']['tuned']}`",
        f"- score: {SCORE_FORMULA} (components: {', '.join(report['score_components']) or 'none'})",
        "",
        "| measure | base | tuned | tuned − base |",
        "|---|---|---|---|",
    ]

    def row(label: str, b: float | None, t: float | None) -> None:
        lines.append(f"| {label} | {_fmt(b)} | {_fmt(t)} | {_fmt(_delta(b, t))} |")

    row("**aggregate score**", report["base_score"], report["tuned_score"])
    for label, measure, key in (
        ("MCQ accuracy", "mcq", "accuracy"),
        ("held-out loss (nats/token)", "held_out", "loss"),
        ("held-out perplexity", "held_out", "perplexity"),
        (f"judge rating ({_judge_scale(m['judge'])})", "judge", "mean_rating"),
    ):
        row(label, _val(m[measure]["base"], key), _val(m[measure]["tuned"], key))
    row("retention loss (forgetting)", m["retention_loss"]["base"], m["retention_loss"]["tuned"])
    for path, pair in m["general"].items():
        row(f"general loss `{Path(path).name}`", _val(pair["base"], "loss"), _val(pair["tuned"], "loss"))
    for kind in ("mcq", "held_out"):
        ub, ut = m["unseen_leaves"]["base"][kind], m["unseen_leaves"]["tuned"][kind]
        key = "accuracy" if kind == "mcq" else "loss"
        if ub or ut:
            row(f"unseen leaves: {kind} {key}", _val(ub, key), _val(ut, key))
    lines += ["", f"Forgetting delta (tuned − base retention loss; > 0 means forgetting): "
              f"{_fmt(report['forgetting_delta'])}"]  # fmt: skip
    for measure, key, label in (("mcq", "accuracy", "MCQ accuracy"), ("held_out", "loss", "held-out loss")):
        b, t = m[measure]["base"], m[measure]["tuned"]
        if not (b and t):
            continue
        lines += ["", f"## {label} per leaf", "", "| leaf | n | base | tuned |", "|---|---|---|---|"]
        for leaf, v in t["per_leaf"].items():
            lines.append(f"| {leaf} | {v['n']} | {_fmt(b['per_leaf'].get(leaf, {}).get(key))} | {_fmt(v[key])} |")
    inputs = report["inputs"]
    lines += ["", "## Inputs", ""]
    for name in ("multiple_choice", "held_out"):
        s = inputs[name]
        lines.append(f"- {name}: `{s['path']}` — {s['used']} used of {s['valid']} valid, {s['malformed']} malformed")
    for s in inputs["general"]:
        lines.append(f"- general: `{s['path']}` — {s['used']} used of {s['valid']} valid, {s['malformed']} malformed")
    for who in ("base", "tuned"):
        j = m["judge"][who]
        if j:
            lines.append(
                f"- judge ({who}): {j.get('style', 'mt-bench')}, scale {_judge_scale(m['judge'])}; {j['n']} rated, "
                f"{j['unparseable']} unparseable, {j['judge_errors']} errors, {j['no_answer']} unanswered"
            )
    lines += _answers_md(report.get("answers") or [])
    return "\n".join(lines) + "\n"


def _judge_scale(pair: dict[str, Any]) -> str:
    """ "1-10" (mt-bench, the default) or "1-5" (dk-bench), from whichever model was judged."""
    judge = pair.get("base") or pair.get("tuned") or {}
    low, high = judge.get("scale") or [1, 10]
    return f"{low}-{high}"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|#~])")
_MD_LINE_START = re.compile(r"^(\s*)(?:([-+=])|(\d+)([.)]))(?=\s|$)", re.MULTILINE)


def md_escape(text: str) -> str:
    """Model and judge text as literal Markdown: inline specials backslash-escaped, and a line that would start a
    list, heading or rule escaped at its start."""
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return _MD_LINE_START.sub(_escape_marker, text)


def _escape_marker(m: re.Match[str]) -> str:
    indent, bullet, digits, dot = m.groups()
    return indent + ("\\" + bullet if bullet else digits + "\\" + dot)


def _quote(text: str | None) -> list[str]:
    if text is None:
        return ["> *(no answer: the prompt leaves no room to answer)*"]
    if not text.strip():
        return ["> *(empty answer)*"]
    return [f"> {line}".rstrip() for line in md_escape(text).splitlines()]


def _answers_md(rows: list[dict[str, Any]]) -> list[str]:
    """The example answers, base then tuned, each with its rating and the judge's reason."""
    shown = [r for r in rows if r.get("example")]
    if not shown:
        return []
    judged = any(r[w].get("rating") is not None or r[w].get("reason") for r in shown for w in ("base", "tuned"))
    lines = ["", "## Example answers", "", "Greedy answers of both models to held-out seed questions"
             + (", rated by the judge." if judged else " (no judge configured: not rated).")]  # fmt: skip
    for n, r in enumerate(shown, 1):
        lines += ["", f"### {n}. `{r['leaf']}`", "", f"**Question:** {md_escape(r['question'])}", "",
                  f"**Reference:** {md_escape(r['reference'])}"]  # fmt: skip
        for who in ("base", "tuned"):
            a = r[who]
            rating = "" if a.get("rating") is None else f" — rating {_fmt(a['rating'], 1)}"
            lines += ["", f"**{who.capitalize()}**{rating}:", "", *_quote(a.get("answer"))]
            if a.get("reason"):
                lines += ["", f"*Judge:* {md_escape(' '.join(a['reason'].split()))}"]
    if len(rows) > len(shown):
        lines += ["", f"{len(rows) - len(shown)} more answered items in evaluation.json (`answers`)."]
    return lines


def _val(summary: dict[str, Any] | None, key: str) -> float | None:
    return summary.get(key) if summary else None


def write_reports(report: dict[str, Any], report_dir: str | Path) -> Path:
    d = Path(report_dir)
    path = d / "evaluation.json"
    atomic_write_json(path, report, indent=1)
    atomic_write_text(d / "evaluation.md", markdown(report))
    return path
