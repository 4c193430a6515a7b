"""Bad input to `labrador-trainer train` exits with the user-error code (the operator fails the Job at once)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.workloads


@pytest.mark.parametrize(
    "config",
    [
        {"model_path": "/nope", "output_dir": "/tmp/x", "phases": [], "bogus": 1},
        {
            "model_path": "/nope",
            "output_dir": "/tmp/x",
            "phases": [{"name": "p", "data_path": "/nope.jsonl"}],
            "max_seq_len": 4096,
            "max_batch_len": 100,
        },
    ],
    ids=["unknown-key", "batch-len-below-seq-len"],
)
def test_invalid_config_exits_2_with_a_summary(tmp_path: Path, config: dict[str, object]) -> None:
    cfg = tmp_path / "run.json"
    cfg.write_text(json.dumps(config))
    term = tmp_path / "termination-log"
    exe = Path(sys.executable).with_name("labrador-trainer")
    p = subprocess.run(
        [str(exe), "train", "--config", str(cfg), "--termination-log", str(term)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2, p.stderr
    summary = json.loads(term.read_text())
    assert summary["status"] == "Failed" and summary["reason"] == "InvalidInput"
    assert "Traceback" not in p.stderr
