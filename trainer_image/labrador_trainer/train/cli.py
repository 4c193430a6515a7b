"""``labrador-trainer train``: argv in, one library call out (under torchrun when there is more than one process)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("train", help="multi-phase fine-tuning from one JSON run config")
    p.add_argument("--config", required=True, help="run.json (labrador_trainer.train.config.TrainConfig)")
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics here (rank 0)")
    p.add_argument("--termination-log", default=None, help="write the JSON summary (<= 4 KiB) here")
    p.add_argument("--nproc-per-node", type=int, default=1, help=">1 or --nnodes>1: relaunch under torchrun")
    p.add_argument("--nnodes", type=int, default=1)
    p.add_argument("--node-rank", type=int, default=0)
    p.add_argument("--master-addr", default="127.0.0.1")
    p.add_argument("--master-port", type=int, default=29500)
    p.set_defaults(func=run)


def torchrun_argv(args: argparse.Namespace, termination_log: str) -> list[str]:
    argv = [
        sys.executable, "-m", "torch.distributed.run",
        f"--nnodes={args.nnodes}", f"--node-rank={args.node_rank}", f"--nproc-per-node={args.nproc_per_node}",
        f"--master-addr={args.master_addr}", f"--master-port={args.master_port}",
        "-m", "labrador_trainer", "train", "--config", args.config, "--termination-log", termination_log,
    ]  # fmt: skip
    if args.metrics_port is not None:
        argv += ["--metrics-port", str(args.metrics_port)]
    return argv


def launch(args: argparse.Namespace) -> int:
    """Run the workers under torchrun, forward SIGTERM to it, and map a preempted run to EXIT_PREEMPTED and bad
    input to EXIT_USER_ERROR (torchrun itself exits 1 when any worker exits non-zero), from the workers' summary."""
    from labrador_trainer.train.recipe import EXIT_PREEMPTED

    with tempfile.TemporaryDirectory(prefix="labrador-train-") as tmp:
        tlog = args.termination_log or str(Path(tmp) / "termination-log")
        proc = subprocess.Popen(torchrun_argv(args, tlog))
        previous = signal.signal(signal.SIGTERM, lambda signum, _frame: proc.send_signal(signum))
        try:
            rc = proc.wait()
        finally:
            signal.signal(signal.SIGTERM, previous)
        written = Path(tlog)
        summary = json.loads(written.read_text() or "{}") if rc != 0 and written.exists() else {}
        if summary.get("status") == "Preempted":
            return EXIT_PREEMPTED
        if summary.get("reason") == "InvalidInput":  # a worker exited 2: the input, not the run, is wrong
            return EXIT_USER_ERROR
        return rc


#: exit code for input the user must fix (bad config, missing or unusable data): the operator's podFailurePolicy
#: fails the Job at once instead of retrying it
EXIT_USER_ERROR = 2


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from labrador_trainer.train.config import TrainConfig
    from labrador_trainer.train.observe import write_summary

    if (args.nproc_per_node > 1 or args.nnodes > 1) and "LOCAL_RANK" not in os.environ:
        return launch(args)
    from labrador_trainer.train.recipe import EXIT_PREEMPTED, Preempted, run_training

    rank0 = os.environ.get("RANK", "0") == "0"
    # the first process of each node (pod) says why its workers stopped, in that pod's own termination log: a
    # multi-node launcher of ranks > 0 has only this to tell a preemption or bad input from a crash
    node_first = os.environ.get("LOCAL_RANK", "0") == "0"
    try:
        cfg = TrainConfig.load(args.config)
        summary = run_training(cfg, metrics_port=args.metrics_port if rank0 else None)
    except (ValueError, FileNotFoundError) as e:  # invalid config or data (pydantic errors are ValueErrors)
        if isinstance(e, ValueError) and not isinstance(e, ValidationError) and "no usable samples" not in str(e):
            raise
        if node_first:
            write_summary(
                args.termination_log, {"status": "Failed", "reason": "InvalidInput", "message": str(e)[:2000]}
            )
        print(f"invalid input: {e}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    except Preempted as e:
        if node_first:
            write_summary(args.termination_log, {"status": "Preempted", "message": str(e)})
        print(f"preempted: {e}; full state saved, exiting {EXIT_PREEMPTED}", file=sys.stderr, flush=True)
        return EXIT_PREEMPTED
    if rank0:
        write_summary(args.termination_log, summary)
    return 0
