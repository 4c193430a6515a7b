"""`make demo`'s path end to end, with smaller sizes: hack/demo.py's own `up` and `down` on a control plane of the
test's own (real apiserver, controllers, labrador-local running the pods, the chart, labrador-operator), then checks
the summary it printed and that `down` left nothing running.

Time budget: measured warm on a 2-core machine (see docs/demo.md); the test fails when the pipeline takes longer.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from pathlib import Path

import pytest

from tests.conftest import load_script

pytestmark = pytest.mark.e2e

#: wall-time budget of the demo path (control plane to summary), seconds: measured 517 s warm (full demo sizes) and
#: 914 s cold (model preparation, vLLM's CPU compile) on a loaded 2-core machine
BUDGET_SECONDS = 1200


demo = load_script("labrador_hack_demo", "hack/demo.py")


def _pids(d: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in (d / "pids").glob("*.pid")}


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1][0] != "Z"


@pytest.mark.timeout(BUDGET_SECONDS + 300)  # room for `down` after a failure
def test_demo_runs_the_pipeline_and_down_stops_everything(tmp_path: Path) -> None:
    out = io.StringIO()
    opts = demo.Options(
        dir=tmp_path / "cluster", samples_per_seed_example=1, max_samples=16, max_questions=5, timeout=BUDGET_SECONDS,
        out=out,
    )  # fmt: skip
    try:
        summary = demo.up(opts)
        started = _pids(opts.dir)
    finally:
        print(out.getvalue())
        demo.down(opts)

    # the summary is the resources' own status: a pinned git revision, samples, two trained phases, an evaluation
    assert len(summary.revision) == 40 and summary.leaves["total"] > 0, summary
    assert summary.generated >= summary.kept > 0, summary
    assert summary.knowledge_samples + summary.skills_samples > 0, summary
    assert list(summary.phase_loss) == ["knowledge", "skills"], summary
    assert all(v is not None and math.isfinite(v) for v in summary.phase_loss.values()), summary
    assert summary.base_score is not None and summary.tuned_score is not None, summary
    model = opts.workspace / summary.model
    assert (model / "config.json").is_file() and list(model.glob("*.safetensors")), sorted(model.iterdir())
    assert summary.report, summary
    assert json.loads(demo.host_path(opts.workspace, summary.report).read_text()), summary.report
    assert summary.wall_seconds < BUDGET_SECONDS, summary
    printed = out.getvalue()
    assert "SyntheticDataJob demo-data: Running" in printed and "FineTuneJob demo-model: Running" in printed
    # progress moves while the teacher works (not only between stages), and an ETA is never shown as 0s
    running = re.findall(r"SyntheticDataJob demo-data: Running (\d+)%", printed)
    assert any(0 < int(p) < 100 for p in running), running
    assert not re.search(r"SyntheticDataJob demo-data: Running \d+%.* ETA 0s", printed)
    # `auto` resolved for this host: the teacher in bf16 only where the CPU has it (or LABRADOR_CPU_BF16=off says
    # not), training in float32 on a CPU
    from labrador_trainer.hardware import inference_dtype

    assert summary.teacher_dtype == inference_dtype("auto", cpu=True), summary
    assert set(summary.phase_dtype.values()) == {"float32"}, summary
    assert printed.startswith("host: ") and "capability" in printed.splitlines()[0]
    assert "Labrador demo: done" in printed and f"wall time       {summary.wall_seconds:.0f}s" in printed

    # down: runner, operator and control plane are gone
    assert {"labrador-local", "labrador-operator", "kube-apiserver", "etcd"} <= set(started), started
    assert not [name for name, pid in started.items() if _running(pid)], started
    assert not _pids(opts.dir)
