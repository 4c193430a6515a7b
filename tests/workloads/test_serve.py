"""``labrador-trainer serve`` (the real command, so the real vLLM OpenAI server on CPU, with the SmolLM2 fixture) and
``labrador-trainer chat`` against it: one question, streaming, ``--compare``, clean failures, the key from the
environment only. The pure helpers (URL, SSE lines, side-by-side rendering) are tested without a server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

import labrador_trainer
from labrador_trainer.chat import ChatError, api_base, connect, delta_text, side_by_side, sse_data, stream_chat
from labrador_trainer.sdg.serve import free_port, server_process
from tests.workloads.conftest import GGUF

pytestmark = pytest.mark.workloads

SECRET = "sk-labrador-never-printed"
QUESTION = "What is the capital of France?"
#: the worktree's package first, whatever an installed console script would import
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(labrador_trainer.__file__).parents[1]), *sys.path])}


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "labrador_trainer", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env or ENV, timeout=timeout)


# -- pure helpers ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("https://h.example/proxy/v1/ ", "https://h.example/proxy/v1"),
    ],
)
def test_urls_are_normalised_to_the_api_root(url: str, base: str) -> None:
    assert api_base(url) == base


@pytest.mark.parametrize("url", ["127.0.0.1:8000", "ftp://h/", "http://", "not a url", "http://[::1", "http://h:port"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ChatError, match="bad URL"):
        api_base(url)


def test_sse_lines_and_chunks() -> None:
    assert sse_data('data: {"a": 1}') == '{"a": 1}'
    assert sse_data("data:[DONE]") == "[DONE]"
    assert [sse_data(x) for x in ("", ": keep-alive", "event: x", "id: 3")] == [None] * 4
    assert delta_text({"choices": [{"delta": {"content": "Par"}}]}) == "Par"
    assert delta_text({"choices": [{"delta": {"role": "assistant"}}]}) == ""
    assert delta_text({"choices": [{"delta": {}, "finish_reason": "stop"}]}) == ""
    assert delta_text({"choices": []}) == ""


def test_side_by_side_wraps_both_columns_to_the_width() -> None:
    left = "Paris is the capital of France, on the Seine.\n\n- a list item"
    block = side_by_side(("tuned: a", left), ("base: b", "Lyon."), 40)
    lines = block.splitlines()
    assert lines[0].split(" | ") == ["tuned: a".ljust(18), "base: b"]
    assert lines[1] == "-" * 18 + " | " + "-" * 18
    assert all(len(line) <= 40 for line in lines)
    assert [line[:18].strip() for line in lines[2:]] == [
        "Paris is the",
        "capital of France,",
        "on the Seine.",
        "",
        "- a list item",
    ]
    assert lines[2].endswith("| Lyon.") and all(line.endswith("|") for line in lines[3:])


# -- serve --------------------------------------------------------------------------------------------------------
def test_serve_refuses_a_missing_or_non_model_directory(tmp_path: Path) -> None:
    for model, why in ((tmp_path / "nope", "does not exist"), (tmp_path, "has no config.json")):
        out = _cli("serve", "--model", str(model), "--served-model-name", "m", "--port", str(free_port()))
        assert out.returncode == 2, out.stderr
        assert out.stderr.strip().count("\n") == 0 and why in out.stderr and "Traceback" not in out.stderr


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real ``labrador-trainer serve`` of the SmolLM2 fixture on loopback, as the serving Deployment runs it;
    the whole process group stopped at the end (vLLM's engine core is a child of the exec'd server)."""
    from labrador_trainer.models import cached_model

    model = cached_model(GGUF)
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    port = free_port()
    argv = [sys.executable, "-m", "labrador_trainer", "serve", "--model", str(model), "--served-model-name", "smol"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--max-model-len", "2048", "--enforce-eager"]
    with server_process(argv, f"http://127.0.0.1:{port}", log, env=ENV, timeout=600) as url:
        yield url


def test_chat_answers_one_question(served: str) -> None:
    out = _cli("chat", "--url", served, "--max-tokens", "24", QUESTION)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip(), out


def test_answers_arrive_streamed(served: str) -> None:
    server = connect("tuned", f"{served}/v1", None)
    assert server.model == "smol"
    pieces: list[str] = []
    messages = [{"role": "user", "content": QUESTION}]
    reply = stream_chat(server, messages, max_tokens=24, temperature=0.0, on_text=pieces.append)
    assert reply.chunks > 1 and len(pieces) == reply.chunks and "".join(pieces) == reply.text


def test_compare_shows_both_answers_side_by_side(served: str) -> None:
    out = _cli("chat", "--url", served, "--compare", served, "--max-tokens", "16", QUESTION)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    tuned, base = text.index("--- tuned: smol"), text.index("--- base: smol")
    header = next(line for line in text.splitlines() if line.startswith("tuned: smol"))
    assert tuned < base < text.index(header) and " | base: smol" in header
    assert "-" * 20 + " | " + "-" * 20 in text


def test_chat_keeps_the_conversation_from_stdin(served: str) -> None:
    argv = [sys.executable, "-m", "labrador_trainer", "chat", "--url", served, "--max-tokens", "8"]
    out = subprocess.run(argv, input="Hello\nAnd again\n/exit\n", capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stderr
    assert len([line for line in out.stdout.splitlines() if line.strip()]) >= 2


# -- failures and the key -------------------------------------------------------------------------------------------
def test_chat_against_a_closed_port_fails_in_one_line() -> None:
    out = _cli("chat", "--url", f"http://127.0.0.1:{free_port()}", QUESTION, timeout=60)
    assert out.returncode == 2 and not out.stdout
    assert out.stderr.strip().count("\n") == 0 and "cannot reach" in out.stderr and "Traceback" not in out.stderr


def test_chat_refuses_a_bad_url() -> None:
    out = _cli("chat", "--url", "localhost:8000", QUESTION, timeout=60)
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0 and "bad URL" in out.stderr


class _Recorder(BaseHTTPRequestHandler):
    """A tiny OpenAI-compatible server that records each request's Authorization header and chat body. Without a
    key it streams a canned answer in three SSE chunks; with one it answers 401 echoing the key back (a server may
    do so: it must still never be printed)."""

    seen: ClassVar[list[str | None]] = []
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        self._send(200, b'{"object": "list", "data": [{"id": "rec", "object": "model"}]}')

    def do_POST(self) -> None:
        key = self.headers.get("Authorization")
        self.seen.append(key)
        self.bodies.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0))))
        if key:
            self._send(401, f'{{"error": "bad key {key}"}}'.encode())
            return
        chunks = [{"role": "assistant"}, {"content": "Par"}, {"content": "is"}, {"content": "."}, {}]
        events = [f"data: {json.dumps({'choices': [{'index': 0, 'delta': d}]})}\n\n" for d in chunks]
        self._send(200, "".join([": keep-alive\n\n", *events, "data: [DONE]\n\n"]).encode(), "text/event-stream")

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    _Recorder.seen.clear()
    _Recorder.bodies.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


#: the environment without either key
NO_KEY = {k: v for k, v in ENV.items() if k not in ("LABRADOR_API_KEY", "OPENAI_API_KEY")}


def test_the_key_comes_from_the_environment_and_is_never_printed(recorder: str) -> None:
    out = _cli(
        "chat", "--url", recorder, QUESTION, env={**NO_KEY, "OPENAI_API_KEY": "other", "LABRADOR_API_KEY": SECRET}
    )
    assert _Recorder.seen == [f"Bearer {SECRET}"] * 2
    assert out.returncode == 2 and "HTTP 401" in out.stderr and out.stderr.strip().count("\n") == 0
    assert SECRET not in out.stdout + out.stderr and "***" in out.stderr
    fallback = _cli("chat", "--url", recorder, QUESTION, env={**NO_KEY, "OPENAI_API_KEY": SECRET})
    assert _Recorder.seen[2:] == [f"Bearer {SECRET}"] * 2 and SECRET not in fallback.stdout + fallback.stderr
    anonymous = _cli("chat", "--url", recorder, QUESTION, env=NO_KEY)
    assert _Recorder.seen[4:] == [None, None] and anonymous.returncode == 0 and anonymous.stdout == "Paris.\n"


def test_a_conversation_from_stdin_keeps_its_history(recorder: str) -> None:
    argv = [sys.executable, "-m", "labrador_trainer", "chat", "--url", recorder, "--system", "Be brief."]
    argv += ["--max-tokens", "8", "--temperature", "0.5"]
    out = subprocess.run(
        argv, input="Hello\n\nAnd again\n/exit\nnot asked\n", capture_output=True, text=True, env=NO_KEY
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Paris.\nParis.\n"
    assert [b["messages"] for b in _Recorder.bodies] == [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Paris."},
            {"role": "user", "content": "And again"},
        ],
    ]
    assert all(
        b["stream"] and b["model"] == "rec" and b["max_tokens"] == 8 and b["temperature"] == 0.5
        for b in _Recorder.bodies
    )


def test_the_cpu_kv_cache_is_sized_from_the_pod_limit() -> None:
    """vLLM's CPU KV cache: a share of the container's limit, never all of it (an OOM kill at the first request)."""
    from labrador_trainer.serving import cpu_kv_cache_gib

    gib = 2**30
    assert cpu_kv_cache_gib(6 * gib, 0.2) == 1 and cpu_kv_cache_gib(8 * gib, None) == 2
    assert cpu_kv_cache_gib(2 * gib, 0.1) == 1  # at least 1 GiB
    assert cpu_kv_cache_gib(None, 0.9) == 2  # no limit: the fixed default
