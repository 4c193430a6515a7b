"""A small client for OpenAI-compatible chat servers, for ``labrador-trainer chat``: the way a person tries the model
the operator serves (and compares it with its base model) from a terminal, with nothing but the trainer image or a
laptop's venv. Plain httpx and the SSE wire format rather than the ``openai`` client: the streaming and the error
lines stay ours, and the unit tests can drive each piece (URL, SSE line, rendering) without a server."""

from __future__ import annotations

import json
import os
import textwrap
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

import httpx

#: the environment variables a key is read from, first set wins (never argv: argv is visible in ``ps``)
KEY_ENV = ("LABRADOR_API_KEY", "OPENAI_API_KEY")
#: a CPU server can take minutes over a long answer; a refused or silent host should fail at once
TIMEOUT = httpx.Timeout(600.0, connect=10.0)
DONE = "[DONE]"

Message = dict[str, str]


class ChatError(Exception):
    """A failure the user can act on (bad URL, unreachable server, HTTP error): printed as one line, exit 2."""


def api_base(url: str) -> str:
    """The API root (``…/v1``) of a server given by its root or by its API root, so both spellings people copy
    (``http://host:8000`` from a port-forward, ``http://host:8000/v1`` from OpenAI docs) work."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 1) > 0
    except ValueError:  # a bad port or IPv6 literal
        ok = False
    if not ok:
        raise ChatError(f"bad URL {url!r}: expected http(s)://HOST[:PORT][/v1]")
    path = parts.path.rstrip("/")
    path = path.removesuffix("/v1")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, f"{path}/v1", "", ""))


def api_key() -> str | None:
    """The key from the environment only, so it never shows in argv, shell history or this program's output."""
    return next((os.environ[k] for k in KEY_ENV if os.environ.get(k)), None)


def sse_data(line: str) -> str | None:
    """The payload of one SSE ``data:`` line; ``None`` for blank lines, comments and other fields (``event:``,
    ``id:``), which OpenAI-compatible servers send as keep-alives or not at all."""
    if not line.startswith("data:"):
        return None
    return line[5:].removeprefix(" ").rstrip("\r\n")


def delta_text(chunk: dict[str, Any]) -> str:
    """The text one streamed chat-completion chunk adds (empty for the role-only first chunk and the final one)."""
    choices = chunk.get("choices") or [{}]
    return str((choices[0].get("delta") or {}).get("content") or "")


@dataclass
class Reply:
    """A streamed answer: its text and how many SSE chunks carried text (more than one proves it streamed)."""

    text: str = ""
    chunks: int = 0


@dataclass
class Server:
    """One server and its side of the conversation: each keeps its own history, so a compared base model continues
    from its own earlier answers, not the tuned model's."""

    label: str
    url: str
    client: httpx.Client
    model: str = ""
    history: list[Message] = field(default_factory=list)


def connect(label: str, url: str, model: str | None) -> Server:
    """A client for ``url`` with the environment's key as a bearer header; the model named, else the server's
    first (a vLLM server started by ``labrador-trainer serve`` serves exactly one)."""
    base = api_base(url)
    key = api_key()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    server = Server(label, base, httpx.Client(base_url=base, headers=headers, timeout=TIMEOUT))
    server.model = model or first_model(server)
    return server


def _fail(server: Server, what: str, exc: Exception | str) -> ChatError:
    """One line, the key scrubbed in case a server echoes the request back."""
    text = " ".join(str(exc).split())[:300]
    key = api_key()
    if key:
        text = text.replace(key, "***")
    return ChatError(f"{server.label} server {server.url}: {what}: {text}")


def _check(server: Server, response: httpx.Response) -> None:
    if response.status_code >= 400:
        response.read()
        raise _fail(server, f"HTTP {response.status_code}", response.text or response.reason_phrase)


def first_model(server: Server) -> str:
    """The first id of ``GET /v1/models``."""
    try:
        response = server.client.get("models")
        _check(server, response)
        ids = [m["id"] for m in response.json().get("data", [])]
    except httpx.HTTPError as e:
        raise _fail(server, "cannot reach it", e) from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise _fail(server, "not an OpenAI-compatible /v1/models answer", e) from None
    if not ids:
        raise _fail(server, "no models", "GET /v1/models listed none")
    return str(ids[0])


def _texts(lines: Iterable[str]) -> Iterable[str]:
    """Each chunk's text, up to ``[DONE]``."""
    for line in lines:
        data = sse_data(line)
        if not data:
            continue
        if data == DONE:
            return
        yield delta_text(json.loads(data))


def stream_chat(
    server: Server, messages: list[Message], *, max_tokens: int, temperature: float, on_text: Callable[[str], None]
) -> Reply:
    """One chat completion with ``stream: true``; ``on_text`` gets each piece as it arrives, so a slow CPU server
    shows progress token by token instead of a silent wait."""
    body = {"model": server.model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature}
    reply = Reply()
    try:
        with server.client.stream("POST", "chat/completions", json={**body, "stream": True}) as response:
            _check(server, response)
            for text in _texts(response.iter_lines()):
                if text:
                    reply.text += text
                    reply.chunks += 1
                    on_text(text)
    except httpx.HTTPError as e:
        raise _fail(server, "cannot reach it", e) from None
    except (ValueError, AttributeError, IndexError) as e:
        raise _fail(server, "not an OpenAI-compatible stream", e) from None
    return reply


def _wrap(text: str, width: int) -> list[str]:
    """Wrapped per paragraph, so the answer's own line breaks (lists, code) survive."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        lines += textwrap.wrap(paragraph, width, replace_whitespace=False, drop_whitespace=True) or [""]
    return lines


def side_by_side(left: tuple[str, str], right: tuple[str, str], width: int) -> str:
    """Two (heading, text) columns, wrapped to fit ``width`` with a `` | `` gutter: the tuned and the base answer
    read line against line."""
    col = max(10, (width - 3) // 2)
    rows = [(left[0], right[0]), ("-" * col, "-" * col)]
    rows += list(zip_longest(_wrap(left[1], col), _wrap(right[1], col), fillvalue=""))
    return "\n".join(f"{a[:col]:<{col}} | {b[:col]}".rstrip() for a, b in rows)
