"""labrador-trainer train on the truncated SmolLM2 (2 layers, CPU): labels, packing, phases, resume, SIGTERM, FSDP."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from labrador_trainer.files import read_jsonl
from labrador_trainer.train.attention import ATTN_IMPLEMENTATION as ATTN
from labrador_trainer.train.config import TrainConfig
from labrador_trainer.train.data import (
    IGNORE,
    Sample,
    assign_ranks,
    collate_packed,
    load_dataset,
    micro_batches,
    packed_loss_sum,
    packed_token_losses,
    tokenize_messages,
)
from labrador_trainer.train.parallel import mesh_shape
from labrador_trainer.train.recipe import EXIT_PREEMPTED, latest_state, run_training
from tests.conftest import ROOT

pytestmark = pytest.mark.workloads
PACKING_TOL = 1e-4  # measured max |Δ| per-token loss packed vs alone: ~1e-5 (fp32, SDPA, 2 layers)
LOGITS_TOL = 1e-4  # measured max |Δ| logits, per-sample causal kernel vs block-diagonal mask: 2.3e-5
GRAD_REL_TOL = 1e-4  # max |Δ grad| / max |grad| per tensor, same comparison: 4.2e-7
RESUME_TOL = 0.0  # measured: resume is bit-exact on CPU
FSDP_TOL = 1e-4  # measured max |Δ| weights, 2 gloo processes (FSDP or replicated) vs 1 process: 3.2e-6


def _cfg(model: Path, data: dict[str, Path], out: Path, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "model_path": str(model),
        "output_dir": str(out),
        "max_seq_len": 512,
        "max_batch_len": 600,
        "checkpoint_every": 8,
        "keep_states": 2,
        "phases": [
            {"name": "knowledge", "data_path": str(data["a"]), "lr": 1e-3, "effective_batch_size": 8,
             "warmup_steps": 1, "scheduler": "cosine"},
            {"name": "skills", "data_path": str(data["b"]), "lr": 5e-4, "effective_batch_size": 4,
             "scheduler": "linear"},
        ],
    }  # fmt: skip
    return TrainConfig.model_validate(base | kw)


def _weights(run_dir: Path, phase: str = "skills") -> dict[str, torch.Tensor]:
    return load_file(run_dir / "phases" / phase / "final" / "model.safetensors")


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(ROOT / "trainer_image"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return os.environ | {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def _write(cfg: TrainConfig, path: Path) -> Path:
    path.write_text(cfg.model_dump_json())
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """In-process runs use one intra-op thread like the subprocesses (OMP_NUM_THREADS=1): CPU kernels' results
    depend on how the work is split, and resume is compared bit for bit."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def train_baseline(
    train_model: Path, train_data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """An uninterrupted two-phase run, in process (its states are gone with the module: a gigabyte and more)."""
    out = tmp_path_factory.mktemp("baseline")
    summary = run_training(_cfg(train_model, train_data, out), handle_sigterm=False)
    assert summary["status"] == "Succeeded"
    assert [p["steps"] for p in summary["phases"]] == [3, 3]
    yield out
    shutil.rmtree(out, ignore_errors=True)


def test_labels_only_on_assistant_spans(train_model: Path, train_data: dict[str, Path]) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(train_model)
    rows = read_jsonl(train_data["a"])
    for row in rows[:6]:
        s = tokenize_messages(tok, row["messages"], unmask=bool(row.get("unmask")))
        learned = tok.decode([t for t in s.labels if t != IGNORE])
        roles = ("user", "assistant") if row.get("unmask") else ("assistant",)
        expected = "".join(f"{m['content']}<|im_end|>\n" for m in row["messages"] if m["role"] in roles)
        assert learned == expected
        # labels are the input ids exactly where they are not -100
        assert all(lab in (IGNORE, t) for lab, t in zip(s.labels, s.input_ids, strict=True))
        assert s.labels[0] == IGNORE  # system span and role headers are masked
    multi = [
        {"role": "user", "content": "a b c"},
        {"role": "assistant", "content": "one"},
        {"role": "user", "content": "d e"},
        {"role": "assistant", "content": "two"},
    ]
    s = tokenize_messages(tok, multi)
    assert tok.decode([t for t in s.labels if t != IGNORE]) == "one<|im_end|>\ntwo<|im_end|>\n"
    s = tokenize_messages(tok, [*multi[:3], {"role": "assistant", "content": ""}])
    assert tok.decode([t for t in s.labels if t != IGNORE]) == "one<|im_end|>\n<|im_end|>\n"


def test_dataset_drops_and_counts(train_model: Path, train_data: dict[str, Path]) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(train_model)
    lengths = sorted(
        len(s.input_ids) for s in load_dataset(train_data["a"], tok, max_seq_len=10**6, min_seq_len=1).samples
    )
    mid = lengths[len(lengths) // 2]
    ds = load_dataset(train_data["a"], tok, max_seq_len=mid, min_seq_len=lengths[2])
    assert ds.stats["dropped_too_short"] == 2
    assert ds.stats["dropped_too_long"] == sum(n > mid for n in lengths)
    assert ds.stats["kept"] + ds.stats["dropped_too_short"] + ds.stats["dropped_too_long"] == len(lengths)


def test_packer_longest_first_least_loaded_under_budget() -> None:
    lengths = {0: 500, 1: 400, 2: 300, 3: 200, 4: 100, 5: 90}
    ranks = assign_ranks(lengths, 2)
    assert ranks == [[0, 3, 4], [1, 2, 5]]  # 500|400+300, then 200 to r0, tie -> r0, 90 -> r1
    bins = micro_batches(ranks[1], lengths, 600)
    assert sorted(i for b in bins for i in b) == [1, 2, 5]
    assert all(sum(lengths[i] for i in b) <= 600 for b in bins)
    assert assign_ranks({0: 5}, 3) == [[0], [], []]


def test_packed_loss_equals_unpacked(train_model: Path, train_data: dict[str, Path]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(train_model)
    model = AutoModelForCausalLM.from_pretrained(train_model, dtype=torch.float32).eval()
    samples = load_dataset(train_data["a"], tok, max_seq_len=512, min_seq_len=20).samples[:5]
    with torch.no_grad():
        batch = collate_packed(samples, mask=True)
        packed = packed_token_losses(model, batch)
        worst = 0.0
        for k, s in enumerate(samples):
            alone = packed_token_losses(model, collate_packed([s], mask=True))
            mine = packed[batch["segments"][0] == k]
            worst = max(worst, (alone - mine).abs().max().item())
            assert alone.sum() / s.n_loss == pytest.approx(mine.sum().item() / s.n_loss, abs=PACKING_TOL)
    print(f"packing: max |per-token loss packed - alone| = {worst:.2e}")
    assert worst < PACKING_TOL


def test_packed_attention_matches_masked_path_without_a_pack_mask(
    train_model: Path, train_data: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The per-sample causal kernel (training's attention) gives the block-diagonal mask's logits, losses and
    gradients, and no (T×T) mask is built: every SDPA call is maskless and one sample long."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(train_model)
    masked = AutoModelForCausalLM.from_pretrained(train_model, dtype=torch.float32)
    packed = AutoModelForCausalLM.from_pretrained(train_model, dtype=torch.float32, attn_implementation=ATTN)
    samples = load_dataset(train_data["a"], tok, max_seq_len=512, min_seq_len=20).samples[:5]
    lengths = [len(s.input_ids) for s in samples]
    ref_batch, batch = collate_packed(samples, mask=True), collate_packed(samples)
    assert "attention_mask" not in batch
    assert batch["cu_seq_lens"].tolist() == [sum(lengths[:k]) for k in range(len(lengths) + 1)]

    calls: list[tuple[int, bool]] = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: Any = None, **kw: Any) -> torch.Tensor:
        calls.append((q.shape[2], attn_mask is None and bool(kw.get("is_causal"))))
        return sdpa(q, k, v, attn_mask=attn_mask, **kw)

    ref = packed_token_losses(masked, ref_batch)
    ref.sum().backward()
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    monkeypatch.setattr("transformers.masking_utils.sdpa_mask", lambda *a, **k: pytest.fail("a mask was built"))
    got = packed_token_losses(packed, batch)
    got.sum().backward()
    monkeypatch.undo()

    n_layers = packed.config.num_hidden_layers
    assert calls == [(n, True) for n in lengths] * n_layers  # per sample, causal, maskless: Σ Lᵢ², no T² mask
    worst = (got - ref).abs().max().item()
    pairs = [(a.grad, b.grad) for a, b in zip(masked.parameters(), packed.parameters(), strict=True)]
    grads = max((a - b).abs().max().item() / a.abs().max().item() for a, b in pairs if a is not None)
    print(f"packed attention vs masked: max |Δ loss| {worst:.2e}, max relative |Δ grad| {grads:.2e}")
    assert worst < PACKING_TOL
    assert grads < GRAD_REL_TOL
    labelled = ref_batch["labels"][0] != IGNORE
    with torch.no_grad():  # the logits themselves, at every position
        a = masked(input_ids=ref_batch["input_ids"], attention_mask=ref_batch["attention_mask"],
                   position_ids=ref_batch["position_ids"]).logits  # fmt: skip
        b = packed(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                   cu_seq_lens_q=batch["cu_seq_lens"]).logits  # fmt: skip
    logits = (a - b).abs().max().item()
    print(f"packed attention vs masked: max |Δ logits| {logits:.2e}")
    assert logits < LOGITS_TOL
    assert bool((got[~labelled] == 0).all())


def test_chunked_linear_cross_entropy_matches_stock_loss(train_model: Path, train_data: dict[str, Path]) -> None:
    """Training's summed loss through the chunked head (logits never whole) equals the stock logits' loss, with the
    same gradients; an all-ignored micro-batch gives 0 and still reaches every layer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(train_model)
    models = [
        AutoModelForCausalLM.from_pretrained(train_model, dtype=torch.float32, attn_implementation=ATTN)
        for _ in range(2)
    ]
    samples = load_dataset(train_data["a"], tok, max_seq_len=512, min_seq_len=20).samples[:5]
    batch = collate_packed(samples)
    stock = packed_token_losses(models[0], batch).sum()
    stock.backward()
    fused = packed_loss_sum(models[1], batch, chunk=100)  # several chunks and a ragged last one
    assert fused.grad_fn is not None and "LinearCrossEntropy" in type(fused.grad_fn).__name__
    fused.backward()
    pairs = [(a.grad, b.grad) for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True)]
    grads = max((a - b).abs().max().item() / a.abs().max().item() for a, b in pairs if a is not None)
    print(f"chunked head: |Δ loss sum| / loss sum {abs(fused.item() - stock.item()) / stock.item():.1e}, "
          f"max relative |Δ grad| {grads:.1e}")  # fmt: skip
    assert fused.item() == pytest.approx(stock.item(), rel=1e-5)
    assert grads < GRAD_REL_TOL
    empty = collate_packed([Sample([tok.eos_token_id], [IGNORE])])
    models[1].zero_grad()
    zero = packed_loss_sum(models[1], empty)
    zero.backward()
    assert zero.item() == 0.0
    assert all(p.grad is not None for p in models[1].parameters())


def test_phase_two_starts_from_phase_one_checkpoint(
    train_baseline: Path, train_model: Path, train_data: dict[str, Path], tmp_path: Path
) -> None:
    phase1 = train_baseline / "phases" / "knowledge" / "final"
    cfg = _cfg(phase1, train_data, tmp_path)
    only_skills = cfg.model_copy(update={"phases": cfg.phases[1:]})
    run_training(only_skills, handle_sigterm=False)
    assert _max_diff(_weights(tmp_path), _weights(train_baseline)) == 0.0
    base = load_file(train_model / "model.safetensors")
    assert _max_diff(base, _weights(train_baseline, "knowledge")) > 0  # phase 1 did train
    assert (train_baseline / "phases" / "skills" / "loss.svg").read_text().startswith("<svg")


def _start(cfg_path: Path, *extra: str, new_session: bool = False) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "labrador_trainer", "train", "--config", str(cfg_path), *extra]
    return subprocess.Popen(
        argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=new_session
    )


def _wait_line(proc: subprocess.Popen[str], prefix: str, deadline_s: float = 120) -> list[str]:
    seen, end = [], time.monotonic() + deadline_s
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if prefix in line:
            return seen
        if time.monotonic() > end:
            break
    proc.kill()
    raise AssertionError(f"no line {prefix!r} in:\n{''.join(seen)[-3000:]}")


def test_sigterm_saves_state_and_resume_matches(
    train_baseline: Path, train_model: Path, train_data: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    cfg_path = _write(_cfg(train_model, train_data, out), tmp_path / "run.json")
    port, tlog = _free_port(), tmp_path / "termination-log"
    proc = _start(cfg_path, "--metrics-port", str(port), "--termination-log", str(tlog))
    _wait_line(proc, "step 1/3")
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for name in ("step", "total_steps", "epoch", "loss", "learning_rate", "tokens_per_second", "eta_seconds"):
        assert f"labrador_train_{name} " in metrics
    assert "labrador_train_total_steps 3.0" in metrics
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_PREEMPTED, rest
    assert json.loads(tlog.read_text())["status"] == "Preempted"
    state = latest_state(out)
    assert state is not None and state[0] == 0 and 1 <= state[1] < 3
    assert not list((out / "state").glob(".tmp-*"))

    proc = _start(cfg_path, "--termination-log", str(tlog))
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log[-3000:]
    summary = json.loads(tlog.read_text())
    assert summary["status"] == "Succeeded" and len(tlog.read_bytes()) <= 4096
    # the summary says where it resumed (the operator puts it on the phase's status)
    assert summary["resumed_from_step"] == state[1] and summary["phases"][0]["resumed_from_step"] == state[1]
    diff = _max_diff(_weights(out), _weights(train_baseline))
    print(f"resume after SIGTERM: max |Δ weight| vs uninterrupted = {diff:.2e}")
    assert diff <= RESUME_TOL


def test_kill_mid_run_resumes_from_latest_state(
    train_baseline: Path, train_model: Path, train_data: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    cfg_path = _write(_cfg(train_model, train_data, out), tmp_path / "run.json")
    proc = _start(cfg_path)
    _wait_line(proc, "step 2/3")  # the state of step 1 (8 samples) is complete by now
    proc.kill()
    proc.wait(timeout=30)
    state = latest_state(out)
    assert state is not None and state[:2] >= (0, 1)
    run_training(TrainConfig.load(cfg_path), handle_sigterm=False)
    diff = _max_diff(_weights(out), _weights(train_baseline))
    print(f"resume after SIGKILL: max |Δ weight| vs uninterrupted = {diff:.2e}")
    assert diff <= RESUME_TOL


def test_lora_phase_trains_and_saves_merged_model(
    train_model: Path, train_data: dict[str, Path], tmp_path: Path
) -> None:
    cfg = _cfg(train_model, train_data, tmp_path, lora={"rank": 4, "alpha": 8}, checkpoint_every=None)
    cfg = cfg.model_copy(update={"phases": cfg.phases[:1]})
    summary = run_training(cfg, handle_sigterm=False)
    merged = _weights(tmp_path, "knowledge")
    assert not any("lora" in k for k in merged)
    assert _max_diff(merged, load_file(train_model / "model.safetensors")) > 0
    assert summary["phases"][0]["final_loss"] is not None


def test_torchrun_two_processes_preempt_resume_and_match_one(
    train_baseline: Path, train_model: Path, train_data: dict[str, Path], tmp_path: Path
) -> None:
    cfg = _cfg(train_model, train_data, tmp_path / "run", checkpoint_every=None)
    cfg_path = _write(cfg.model_copy(update={"phases": cfg.phases[:1]}), tmp_path / "run.json")
    tlog = tmp_path / "tlog"
    extra = ("--nproc-per-node", "2", "--termination-log", str(tlog))
    proc = _start(cfg_path, *extra, "--master-port", str(_free_port()))
    log = "".join(_wait_line(proc, "step 1/3"))
    proc.send_signal(signal.SIGTERM)  # to the launcher, as the kubelet does: it forwards to torchrun
    rest, _ = proc.communicate(timeout=120)
    log += rest
    assert proc.returncode == EXIT_PREEMPTED, log[-3000:]
    assert json.loads(tlog.read_text())["status"] == "Preempted"

    proc = _start(cfg_path, *extra, "--master-port", str(_free_port()))
    rest, _ = proc.communicate(timeout=300)
    log += rest
    assert proc.returncode == 0, rest[-3000:]
    assert json.loads(tlog.read_text())["world_size"] == 2
    losses = [float(m) for m in re.findall(r"step \d/3 epoch \d loss ([0-9.]+)", log)]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    diff = _max_diff(_weights(tmp_path / "run", "knowledge"), _weights(train_baseline, "knowledge"))
    print(f"torchrun 2×gloo FSDP (preempted, resumed) vs 1 process: max |Δ weight| = {diff:.2e}")
    assert diff < FSDP_TOL


def test_two_nodes_sigterm_to_one_stops_both_preempted(
    train_model: Path, train_data: dict[str, Path], tmp_path: Path
) -> None:
    """Two launchers as the two pods of a multi-node phase (--nnodes 2, one process each): SIGTERM to node 1's only
    (the kubelet deleting that pod) stops both ranks at the same step with the state saved, and both pods say so —
    exit 143 with a Preempted termination message — not only rank 0's: node 1's torchrun exits 1 on the signal,
    and a 1 there would fail the phase as a crash."""
    cfg = _knowledge_only(train_model, train_data, tmp_path / "run", checkpoint_every=None)
    cfg_path = _write(cfg, tmp_path / "run.json")
    port, procs = str(_free_port()), []
    for rank in (0, 1):
        tlog = str(tmp_path / f"tlog-{rank}")
        procs.append(_start(cfg_path, "--nnodes", "2", "--node-rank", str(rank), "--master-port", port,
                            "--termination-log", tlog))  # fmt: skip
    log = "".join(_wait_line(procs[0], "step 1/3"))  # rank 0 prints the steps
    procs[1].send_signal(signal.SIGTERM)
    outs = [p.communicate(timeout=120)[0] for p in procs]
    log += outs[0]
    assert [p.returncode for p in procs] == [EXIT_PREEMPTED] * 2, (log[-2000:], outs[1][-2000:])
    assert [json.loads((tmp_path / f"tlog-{r}").read_text())["status"] for r in (0, 1)] == ["Preempted"] * 2
    state = latest_state(tmp_path / "run")
    assert state is not None and state[0] == 0 and 1 <= state[1] < 3, state
    assert f"stopped at step {state[1]}/3" in outs[1], outs[1][-2000:]  # rank 1 stopped where rank 0 saved


def test_torchrun_bad_input_exits_2_like_one_process(
    train_model: Path, train_data: dict[str, Path], tmp_path: Path
) -> None:
    """Under torchrun (two processes) a worker that finds the input unusable exits 2, and so does the launcher: the
    pod failure policy fails the Job at once instead of retrying what cannot work (torchrun itself exits 1)."""
    cfg = _cfg(train_model, {**train_data, "a": tmp_path / "missing.jsonl"}, tmp_path / "run")
    cfg_path = _write(cfg.model_copy(update={"phases": cfg.phases[:1]}), tmp_path / "run.json")
    proc = _start(cfg_path, "--nproc-per-node", "2", "--termination-log", str(tmp_path / "tlog"),
                  "--master-port", str(_free_port()))  # fmt: skip
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2, out[-3000:]
    assert json.loads((tmp_path / "tlog").read_text())["reason"] == "InvalidInput"


def _knowledge_only(model: Path, data: dict[str, Path], out: Path, **kw: Any) -> TrainConfig:
    cfg = _cfg(model, data, out, **kw)
    return cfg.model_copy(update={"phases": cfg.phases[:1]})


def _torchrun_to_end(cfg: TrainConfig, cfg_path: Path) -> str:
    proc = _start(_write(cfg, cfg_path), "--nproc-per-node", "2", "--master-port", str(_free_port()))
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log[-3000:]
    return log


@pytest.fixture(scope="module")
def fsdp_run(
    train_model: Path, train_data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """An uninterrupted two-process FULL_SHARD run of the first phase, a full state after every step."""
    out = tmp_path_factory.mktemp("fsdp")
    _torchrun_to_end(_knowledge_only(train_model, train_data, out / "run"), out / "run.json")
    yield out / "run"
    shutil.rmtree(out, ignore_errors=True)


def test_fsdp_two_processes_match_one(train_baseline: Path, fsdp_run: Path) -> None:
    diff = _max_diff(_weights(fsdp_run, "knowledge"), _weights(train_baseline, "knowledge"))
    print(f"torchrun 2×gloo FSDP FULL_SHARD vs 1 process: max |Δ weight| = {diff:.2e}")
    assert diff < FSDP_TOL
    ckpt = _weights(fsdp_run, "knowledge") | load_file(
        fsdp_run / "phases" / "knowledge" / "samples_8" / "model.safetensors"
    )
    assert "lm_head.weight" not in ckpt  # tied to the embeddings: saved once, as from one process


@pytest.mark.parametrize("strategy", ["SHARD_GRAD_OP", "NO_SHARD"])
def test_other_strategies_give_the_same_result(
    strategy: str, fsdp_run: Path, train_baseline: Path, train_model: Path, train_data: dict[str, Path], tmp_path: Path
) -> None:
    cfg = _knowledge_only(train_model, train_data, tmp_path / "run", fsdp={"sharding_strategy": strategy})
    _torchrun_to_end(cfg, tmp_path / "run.json")
    mine = _weights(tmp_path / "run", "knowledge")
    vs_full, vs_one = (
        _max_diff(mine, _weights(fsdp_run, "knowledge")),
        _max_diff(mine, _weights(train_baseline, "knowledge")),
    )
    print(f"{strategy}: max |Δ weight| vs FULL_SHARD = {vs_full:.2e}, vs 1 process = {vs_one:.2e}")
    assert vs_full < FSDP_TOL and vs_one < FSDP_TOL


def test_fsdp_killed_mid_run_resumes_to_the_uninterrupted_run(
    fsdp_run: Path, train_model: Path, train_data: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    cfg_path = _write(_knowledge_only(train_model, train_data, out), tmp_path / "run.json")
    proc = _start(cfg_path, "--nproc-per-node", "2", "--master-port", str(_free_port()), new_session=True)
    _wait_line(proc, "step 2/3")  # the state of step 1 is complete by now
    os.killpg(proc.pid, signal.SIGKILL)  # launcher, torchrun and both workers, with no chance to save
    proc.wait(timeout=30)
    state = latest_state(out)
    assert state is not None and state[:2] >= (0, 1) and not (out / "phases" / "knowledge" / "final").exists()
    log = _torchrun_to_end(TrainConfig.load(cfg_path), cfg_path)
    assert "step 1/3" not in log  # resumed, not restarted
    diff = _max_diff(_weights(out, "knowledge"), _weights(fsdp_run, "knowledge"))
    print(f"FSDP resume after SIGKILL: max |Δ weight| vs uninterrupted FSDP = {diff:.2e}")
    assert diff <= RESUME_TOL


def test_hybrid_shard_mesh() -> None:
    assert mesh_shape(8, 4, "HYBRID_SHARD") == (2, 4)  # shard within a node, replicate across the two
    assert mesh_shape(4, 4, "HYBRID_SHARD") == (4,)  # one node: like FULL_SHARD
    assert mesh_shape(8, 4, "FULL_SHARD") == mesh_shape(8, 4, "SHARD_GRAD_OP") == (8,)
