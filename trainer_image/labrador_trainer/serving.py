"""``labrador-trainer serve`` and ``labrador-trainer chat``: serving a tuned model and talking to it.

``serve`` is what the operator's serving Deployment runs in the trainer image: it checks the model directory, then
becomes vLLM's OpenAI-compatible server (``os.execv``, so the container's PID 1 is vLLM and signals reach it
directly). ``chat`` is how a user tries that server — or any OpenAI-compatible one — from a terminal, optionally
against the base model (``--compare``). Exit 2 for anything the user must fix (bad directory, bad URL, unreachable
server, HTTP error), always as one line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # httpx is imported by chat only, not by serve
    from labrador_trainer import chat

log = logging.getLogger("labrador_trainer.serving")

EXIT_USER_ERROR = 2
#: when the terminal's width is unknown (a pipe, a CI log)
FALLBACK_WIDTH = 100
#: GiB of KV cache vLLM gets on a CPU without a memory limit, unless ``VLLM_CPU_KVCACHE_SPACE`` says otherwise
CPU_KV_CACHE_GIB = "2"
#: without --gpu-memory-utilization, the share of the container's memory limit the KV cache gets on a CPU
DEFAULT_CPU_SHARE = 0.25


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _add_serve(sub)
    _add_chat(sub)


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The flags are the operator's contract (builders/serving.py): ``--model``, ``--served-model-name``, ``--host``,
    ``--port``, and with spec.serve.vllm ``--max-model-len``, ``--dtype``, ``--gpu-memory-utilization``,
    ``--tensor-parallel-size`` and ``--enforce-eager``."""
    p = sub.add_parser("serve", help="serve a model directory with vLLM's OpenAI-compatible server")
    p.add_argument("--model", required=True, help="an HF model directory (config.json and weights)")
    p.add_argument("--served-model-name", required=True, help="the model's name in the API")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--max-model-len", type=int, default=None, help="context length (default: the model's)")
    p.add_argument(
        "--dtype",
        choices=("auto", "bfloat16", "float32"),
        default="auto",
        help="weights dtype; auto: the model's own on a GPU, on a CPU bfloat16 only where it is native",
    )
    p.add_argument("--gpu-memory-utilization", type=float, default=None, help="share of GPU memory vLLM may use")
    p.add_argument("--tensor-parallel-size", type=int, default=None, help="GPUs one engine spans")
    p.add_argument("--enforce-eager", action="store_true", help="no graph compilation (starts minutes sooner on CPU)")
    p.set_defaults(func=run_serve)


def _add_chat(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "chat",
        help="chat with an OpenAI-compatible server (key from LABRADOR_API_KEY or OPENAI_API_KEY)",
        description="One question (PROMPT) or, without it, a conversation read from stdin (EOF or /exit ends it). "
        "The API key, if any, comes from LABRADOR_API_KEY, else OPENAI_API_KEY.",
    )
    p.add_argument("--url", required=True, help="the server's root, e.g. http://127.0.0.1:8000 (or .../v1)")
    p.add_argument("--model", default=None, help="model name (default: the first of GET /v1/models)")
    p.add_argument("--compare", default=None, metavar="BASE_URL", help="also ask this server and show both")
    p.add_argument("--base-model", default=None, help="model name at BASE_URL (default: its first)")
    p.add_argument("--system", default=None, help="a system message to start the conversation with")
    p.add_argument("--max-tokens", type=int, default=256, help="answer length cap (default 256)")
    p.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0)")
    p.add_argument("prompt", nargs="?", default=None, metavar="PROMPT", help="ask this once and exit")
    p.set_defaults(func=run_chat)


def _user_error(command: str, message: str) -> int:
    print(f"labrador-trainer {command}: {message}", file=sys.stderr, flush=True)
    return EXIT_USER_ERROR


# -- serve ----------------------------------------------------------------------------------------------------------
def model_problem(model: Path) -> str | None:
    """Why ``model`` cannot be served, checked before exec: vLLM's own error for a missing directory is a long
    traceback that reads like a Hub lookup failure."""
    if not model.is_dir():
        return f"model directory {model} does not exist"
    if not (model / "config.json").is_file():
        return f"model directory {model} has no config.json (not an HF model directory)"
    return None


def memory_limit_bytes() -> int | None:
    """The container's memory limit (cgroup v2, then v1); None when unlimited or unknown."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # v1 says "unlimited" with a huge number
            return int(text)
    return None


def cpu_kv_cache_gib(limit: int | None, utilization: float | None) -> int:
    """GiB of KV cache on a CPU: ``utilization`` (default DEFAULT_CPU_SHARE) of the container's memory limit, at least
    1; CPU_KV_CACHE_GIB when there is no limit. The rest of the limit is for the server's three processes (API
    server, engine core, worker: each a Python with torch, ~0.6 GiB) and the weights — measured: 2 GiB of KV cache in
    a 4 GiB pod was OOM-killed at the first request."""
    if limit is None:
        return int(CPU_KV_CACHE_GIB)
    share = DEFAULT_CPU_SHARE if utilization is None else utilization
    return max(1, int(limit / 2**30 * share))


def cpu_kv_cache(utilization: float | None) -> None:
    """On a CPU, vLLM otherwise reserves ``--gpu-memory-utilization`` (0.92) of the NUMA node's memory — the host's,
    not the pod's limit — and refuses to start when other processes use more than 8% of it; a fixed KV cache
    (vLLM's ``VLLM_CPU_KVCACHE_SPACE``, GiB) sized from the pod's limit starts in any pod with room for it. Set in the
    environment the exec'd server inherits; a value already there (the Deployment's) wins."""
    import torch

    if not torch.cuda.is_available():
        gib = cpu_kv_cache_gib(memory_limit_bytes(), utilization)
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(gib))


def vllm_flags(args: argparse.Namespace) -> list[str]:
    """The engine settings as vLLM's server flags (numbers as the parser typed them: no free text)."""
    out = ["--max-model-len", str(args.max_model_len)] if args.max_model_len else []
    if args.gpu_memory_utilization is not None:
        out += ["--gpu-memory-utilization", str(args.gpu_memory_utilization)]
    if args.tensor_parallel_size is not None:
        out += ["--tensor-parallel-size", str(args.tensor_parallel_size)]
    return out + (["--enforce-eager"] if args.enforce_eager else [])


def run_serve(args: argparse.Namespace) -> int:
    from labrador_trainer.sdg.serve import server_argv

    model = Path(args.model)
    problem = model_problem(model)
    if problem:
        return _user_error("serve", problem)
    extra = vllm_flags(args)
    argv = server_argv(model, args.served_model_name, host=args.host, port=args.port, dtype=args.dtype, args=extra)
    cpu_kv_cache(args.gpu_memory_utilization)
    log.info("serving %s as %r on %s:%d: %s", model, args.served_model_name, args.host, args.port, argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)  # never returns: the container's process becomes vLLM's server
    return 0  # pragma: no cover


# -- chat -----------------------------------------------------------------------------------------------------------
def run_chat(args: argparse.Namespace) -> int:
    from labrador_trainer.chat import ChatError

    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would break into the answers
    try:
        servers = _servers(args)
        prompts = [args.prompt] if args.prompt is not None else _read_prompts(sys.stdin)
        for prompt in prompts:
            _ask(servers, prompt, args, sys.stdout)
    except ChatError as e:
        return _user_error("chat", str(e))
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    return 0


def _servers(args: argparse.Namespace) -> list[chat.Server]:
    from labrador_trainer.chat import connect

    servers = [connect("tuned", args.url, args.model)]
    if args.compare:
        servers.append(connect("base", args.compare, args.base_model))
    if args.system:
        for server in servers:
            server.history.append({"role": "system", "content": args.system})
    return servers


def _read_prompts(stdin: TextIO) -> Iterator[str]:
    """Lines from stdin until EOF or ``/exit``; a prompt marker only on a terminal, so piped output stays clean."""
    while True:
        if stdin.isatty():
            print("> ", end="", file=sys.stderr, flush=True)
        line = stdin.readline()
        if not line or line.strip() == "/exit":
            return
        if line.strip():
            yield line.strip()


def _ask(servers: list[chat.Server], prompt: str, args: argparse.Namespace, out: TextIO) -> None:
    """Streams each server's answer (under a label line when comparing), keeps it in that server's history, then
    sets the answers side by side."""
    from labrador_trainer.chat import side_by_side, stream_chat

    def write(text: str) -> None:
        out.write(text)
        out.flush()

    answers = []
    for server in servers:
        if len(servers) > 1:
            write(f"--- {server.label}: {server.model} ({server.url})\n")
        messages = [*server.history, {"role": "user", "content": prompt}]
        reply = stream_chat(server, messages, max_tokens=args.max_tokens, temperature=args.temperature, on_text=write)
        write("\n")
        server.history = [*messages, {"role": "assistant", "content": reply.text}]
        answers.append((f"{server.label}: {server.model}", reply.text))
    if len(answers) == 2:
        width = shutil.get_terminal_size((FALLBACK_WIDTH, 24)).columns
        write(f"\n{side_by_side(answers[0], answers[1], width)}\n")
