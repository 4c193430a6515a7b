"""The multi-phase fine-tuning recipe, readable top to bottom: setup → phases → loop → checkpoints.

Data parallelism: every rank derives the same global batch from (seed, epoch, step), takes its share (longest
sample first onto the least-loaded rank) and accumulates gradients over packed micro-batches. The loss of a step is
the summed token cross-entropy divided by the number of unmasked tokens of the whole global batch (all ranks), which
every rank knows without communication, so gradients are reduced with SUM.

With more than one process the model is sharded with FSDP2 (``parallel.shard``: ``fully_shard`` per decoder layer
and the root; gloo on CPU, nccl on GPU): FULL_SHARD reshards parameters after forward, SHARD_GRAD_OP keeps them
until backward, HYBRID_SHARD shards within a node and replicates across nodes, cpuOffload keeps the shards in host
memory. Every rank runs the same number of micro-batches (padding with an empty one), as FSDP's collectives need.
NO_SHARD and LoRA runs keep the replicated path: every rank holds the whole model and gradients are all-reduced
once per step by hand (LoRA's trainable adapters are small and the final merge needs the whole model).
Checkpoints and resume states are whole (unsharded) state dicts keyed by parameter name, gathered to rank 0, so any
world size or strategy can resume any state.
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from labrador_trainer.hardware import compute_dtype, cpu_capability
from labrador_trainer.train import parallel
from labrador_trainer.train.attention import ATTN_IMPLEMENTATION
from labrador_trainer.train.config import Phase, TrainConfig
from labrador_trainer.train.data import (
    IGNORE,
    Sample,
    assign_ranks,
    collate_packed,
    global_batch,
    load_dataset,
    micro_batches,
    packed_loss_sum,
    steps_per_epoch,
)
from labrador_trainer.train.observe import Observer, loss_curve_svg

log = logging.getLogger(__name__)

EXIT_PREEMPTED = 143  # 128 + SIGTERM: full state was saved at a step boundary; rerun to resume
STATE_FILE = "state.pt"


class Preempted(Exception):
    """Raised after SIGTERM once the full state is saved; the CLI exits with EXIT_PREEMPTED."""


@dataclass
class PhaseResult:
    name: str
    steps: int
    final_loss: float | None
    checkpoint: str
    data: dict[str, int] = field(default_factory=dict)
    tokens: int = 0  # real (unpadded) tokens of the steps run by this process invocation, all ranks
    train_s: float = 0.0  # seconds spent in those steps (checkpoint writes excluded)
    resumed_from_step: int | None = None  # the saved step this invocation resumed the phase from


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def init(cls) -> Dist:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
        if world > 1 and not dist.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            # gloo for host tensors too (CPU-offloaded FSDP shards: the grad-norm all-reduce)
            dist.init_process_group("cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo")
        rank, local_world = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        return cls(rank=rank, world=world, local_world=local_world, device=device)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def _lr_lambda(phase: Phase, total: int) -> Any:
    def f(step: int) -> float:
        if step < phase.warmup_steps:
            return (step + 1) / (phase.warmup_steps + 1)
        if phase.scheduler == "constant":
            return 1.0
        frac = (step - phase.warmup_steps) / max(1, total - phase.warmup_steps)
        if phase.scheduler == "linear":
            return max(0.0, 1.0 - frac)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))

    return f


def _atomic_dir(target: Path) -> Path:
    tmp = target.with_name(f".tmp-{target.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _commit_dir(tmp: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


def latest_state(output_dir: str | Path) -> tuple[int, int, Path] | None:
    """(phase index, step, dir) of the newest complete full state; temp dirs are never picked."""
    root = Path(output_dir) / "state"
    found = []
    for d in root.glob("p*-s*") if root.exists() else []:
        if (d / STATE_FILE).exists():
            p, s = d.name[1:].split("-s")
            found.append((int(p), int(s), d))
    return max(found, default=None, key=lambda t: (t[0], t[1]))


class Recipe:
    def __init__(self, cfg: TrainConfig, *, metrics_port: int | None = None) -> None:
        self.cfg = cfg
        self.d = Dist.init()
        self.out = Path(cfg.output_dir)
        self.obs = Observer(enabled=self.d.rank == 0, metrics_port=metrics_port)
        self._stop = False
        self.model: Any = None
        self.tokenizer: Any = None
        # FSDP when several processes train all weights; NO_SHARD and LoRA replicate the model
        self.sharded = self.d.world > 1 and cfg.fsdp.sharding_strategy != "NO_SHARD" and cfg.lora is None

    # -- signals ----------------------------------------------------------------------------------------------------
    def install_signal_handler(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            self._stop = True

        signal.signal(signal.SIGTERM, handler)

    def _should_stop(self) -> bool:
        if self.d.world == 1:
            return self._stop
        flag = torch.tensor([1.0 if self._stop else 0.0], device=self.d.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    # -- setup ------------------------------------------------------------------------------------------------------
    def resolved_dtype(self) -> str:
        """The precision this run trains in: ``auto`` is bf16 on CUDA and fp32 on CPU (see ``hardware``)."""
        return compute_dtype(self.cfg.dtype, cuda=self.d.device.type == "cuda")

    def _dtype(self) -> torch.dtype | None:
        """The autocast dtype (None: plain fp32); weights and optimizer state stay fp32 either way."""
        return torch.bfloat16 if self.resolved_dtype() == "bfloat16" else None

    def _load_model(self, path: str | Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.manual_seed(self.cfg.seed)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        # each packed sample attends to itself only, on the causal kernel, with no mask over the pack (attention.py)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation=ATTN_IMPLEMENTATION)
        model.config.use_cache = False
        if self.cfg.lora is not None:
            from peft import LoraConfig, get_peft_model

            lc = self.cfg.lora
            model = get_peft_model(
                model,
                LoraConfig(
                    r=lc.rank,
                    lora_alpha=lc.alpha,
                    lora_dropout=lc.dropout,
                    target_modules=list(lc.target_modules),
                    task_type="CAUSAL_LM",
                ),
            )
        self.model = model.to(self.d.device)
        if self.sharded:
            d = self.d
            parallel.shard(self.model, self.cfg.fsdp, world=d.world, local_world=d.local_world, device=d.device)

    # -- checkpoints ------------------------------------------------------------------------------------------------
    def save_hf(self, target: Path, *, final: bool) -> None:
        full = parallel.full_model_state(self.model) if self.sharded else None  # collective
        if self.d.rank == 0:
            tmp = _atomic_dir(target)
            model = self.model.merge_and_unload() if final and self.cfg.lora is not None else self.model
            model.save_pretrained(tmp, safe_serialization=True, state_dict=full)
            self.tokenizer.save_pretrained(tmp)
            _commit_dir(tmp, target)
            if model is not self.model:
                self.model = model
        self.d.barrier()

    def save_state(self, phase_idx: int, step: int, opt: Any, sched: Any) -> None:
        model_sd, opt_sd = parallel.full_state(self.model, opt)  # collective under FSDP
        if self.d.rank == 0:
            target = self.out / "state" / f"p{phase_idx:02d}-s{step:08d}"
            tmp = _atomic_dir(target)
            torch.save(
                {
                    "phase": phase_idx,
                    "step": step,
                    "model": model_sd,
                    "optimizer": opt_sd,
                    "scheduler": sched.state_dict(),
                    "losses": self.obs.losses,
                    "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
                    "seed": self.cfg.seed,
                },
                tmp / STATE_FILE,
            )
            _commit_dir(tmp, target)
            states = sorted(d for d in (self.out / "state").glob("p*-s*") if (d / STATE_FILE).exists())
            for old in states[: -self.cfg.keep_states]:
                shutil.rmtree(old, ignore_errors=True)
        self.d.barrier()

    def _load_state(self, path: Path, opt: Any, sched: Any) -> int:
        st = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
        parallel.load_full_state(self.model, opt, st["model"], st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        torch.set_rng_state(st["rng"]["torch"].cpu())
        random.setstate(st["rng"]["python"])
        self.obs.losses = [tuple(x) for x in st["losses"]]
        return int(st["step"])

    # -- training ---------------------------------------------------------------------------------------------------
    @property
    def _empty(self) -> Sample:
        """A one-token micro-batch with no loss: pads a rank's share so all ranks run FSDP's collectives alike."""
        return Sample(input_ids=[self.tokenizer.eos_token_id or 0], labels=[IGNORE])

    def _my_micro_batches(self, lengths: dict[int, int]) -> list[list[int]]:
        plan = [micro_batches(r, lengths, self.cfg.max_batch_len) for r in assign_ranks(lengths, self.d.world)]
        mine = plan[self.d.rank]
        return mine + [[]] * (max(map(len, plan)) - len(mine)) if self.sharded else mine

    def train(self) -> list[PhaseResult]:
        if self.d.rank == 0:
            where = "CUDA" if self.d.device.type == "cuda" else f"CPU {cpu_capability()}"
            log.info("training dtype %s (asked %s; %s)", self.resolved_dtype(), self.cfg.dtype, where)
        results = []
        source: str | Path = self.cfg.model_path
        resume = latest_state(self.out)
        for i, phase in enumerate(self.cfg.phases):
            final = self.out / "phases" / phase.name / "final"
            if (final / "config.json").exists():  # committed by rename: the phase is done
                results.append(PhaseResult(phase.name, 0, None, str(final)))
                source = final
                continue
            results.append(self.train_phase(i, phase, source, resume if resume and resume[0] == i else None))
            source = final
        return results

    def train_phase(
        self, idx: int, phase: Phase, source: str | Path, resume: tuple[int, int, Path] | None
    ) -> PhaseResult:
        cfg, d = self.cfg, self.d
        self._load_model(source)
        ds = load_dataset(phase.data_path, self.tokenizer, max_seq_len=cfg.max_seq_len, min_seq_len=cfg.min_seq_len)
        if not ds.samples:
            raise ValueError(f"phase {phase.name}: no usable samples in {phase.data_path} ({ds.stats})")
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=phase.lr, weight_decay=cfg.weight_decay)
        spe = steps_per_epoch(len(ds.samples), phase.effective_batch_size)
        total = spe * phase.epochs
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(phase, total))
        start = self._load_state(resume[2], opt, sched) if resume else 0
        if resume is None:
            self.obs.losses = []
        amp = self._dtype()
        self.obs.phase_start(phase.name, total, start)
        ckpt_dir = self.out / "phases" / phase.name
        loss_val: float | None = None
        t_phase = time.perf_counter()
        tokens, train_s = 0, 0.0
        for step in range(start, total):
            epoch, index = divmod(step, spe)
            t0 = time.perf_counter()
            idxs = global_batch(len(ds.samples), phase.effective_batch_size, cfg.seed, epoch, index)
            lengths = {j: len(ds.samples[j].input_ids) for j in idxs}
            n_loss = sum(ds.samples[j].n_loss for j in idxs)  # unmasked tokens over all ranks
            self.model.train()
            loss_sum = torch.zeros((), device=d.device)
            for mb in self._my_micro_batches(lengths):
                batch = collate_packed([ds.samples[j] for j in mb] or [self._empty], d.device)
                with torch.autocast(d.device.type, dtype=amp, enabled=amp is not None):
                    loss = packed_loss_sum(self.model, batch) / n_loss
                loss.backward()
                loss_sum += loss.detach()
            if d.world > 1 and not self.sharded:
                for p in params:
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
                    dist.all_reduce(p.grad)
            if d.world > 1:
                dist.all_reduce(loss_sum)
            if cfg.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            lr = sched.get_last_lr()[0]
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            loss_val = float(loss_sum.item())
            dt = time.perf_counter() - t0
            tokens, train_s = tokens + sum(lengths.values()), train_s + dt
            rate = (time.perf_counter() - t_phase) / (step + 1 - start)
            self.obs.step(
                step=step + 1,
                total=total,
                epoch=epoch,
                loss=loss_val,
                lr=lr,
                tps=sum(lengths.values()) / dt,
                eta=rate * (total - step - 1),
            )
            done = step + 1
            seen = done * phase.effective_batch_size
            ebs = phase.effective_batch_size
            every = cfg.checkpoint_every
            if every and done < total and seen // every > (seen - ebs) // every:
                self.save_hf(ckpt_dir / f"samples_{seen}", final=False)
                self.save_state(idx, done, opt, sched)
            if done < total and self._should_stop():
                self.save_state(idx, done, opt, sched)
                self.obs.phase_end()
                raise Preempted(f"phase {phase.name} stopped at step {done}/{total}")
        self.obs.phase_end()
        self.save_hf(ckpt_dir / "final", final=True)
        if d.rank == 0:
            loss_curve_svg([x for _, x in self.obs.losses], ckpt_dir / "loss.svg", title=f"loss — {phase.name}")
        return PhaseResult(phase.name, total, loss_val, str(ckpt_dir / "final"), ds.stats, tokens, round(train_s, 2),
                           resumed_from_step=start or None)  # fmt: skip


def export(src: Path, dest: Path) -> None:
    """Copy a final model to the output directory: temp name, then rename, so readers never see half of it."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)


def run_training(cfg: TrainConfig, *, metrics_port: int | None = None, handle_sigterm: bool = True) -> dict[str, Any]:
    """Train every phase (resuming from the newest complete state); returns the summary. Raises Preempted."""
    t0 = time.perf_counter()
    recipe = Recipe(cfg, metrics_port=metrics_port)
    if handle_sigterm:
        recipe.install_signal_handler()
    results = recipe.train()
    if cfg.export_dir and recipe.d.rank == 0:
        export(Path(results[-1].checkpoint), Path(cfg.export_dir))
    trained = [r for r in results if r.final_loss is not None]
    resumed = [r.resumed_from_step for r in results if r.resumed_from_step]
    return {
        "status": "Succeeded",
        **({"resumed_from_step": resumed[-1]} if resumed else {}),
        "final_loss": trained[-1].final_loss if trained else None,
        "tokens": sum(r.tokens or 0 for r in results),
        "export_dir": cfg.export_dir,
        "wall_s": round(time.perf_counter() - t0, 1),
        "world_size": recipe.d.world,
        "dtype": recipe.resolved_dtype(),
        "final_checkpoint": results[-1].checkpoint,
        "phases": [
            {
                "name": r.name,
                "steps": r.steps,
                "final_loss": r.final_loss,
                "checkpoint": r.checkpoint,
                "tokens": r.tokens,
                "train_s": r.train_s,
                **({"resumed_from_step": r.resumed_from_step} if r.resumed_from_step else {}),
                **r.data,
            }
            for r in results
        ],
    }
