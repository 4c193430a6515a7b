"""Unit-tier helpers: a loopback HTTP server that answers the operator's API client as the API server would for the
case under test (the kubernetes client and its error handling run for real; the integration tier has the real API
server), and a controller runtime around it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import kubernetes
import pytest

from labrador_operator.controller.cache import Cache
from labrador_operator.controller.client import Client
from labrador_operator.controller.config import OperatorConfig
from labrador_operator.controller.runtime import Runtime
from labrador_operator.settings import Settings

#: (method, path) -> (HTTP status, JSON body)
Answer = Callable[[str, str, Any], tuple[int, Any]]


@dataclass
class Request:
    method: str
    path: str
    body: Any


@dataclass
class LoopbackAPI:
    url: str
    requests: list[Request] = field(default_factory=list)
    answer: Answer = lambda method, path, body: (200, {})

    def client(self, workers: int = 4) -> Client:
        cfg = kubernetes.client.Configuration()
        cfg.host = self.url
        return Client(workers, api_client=kubernetes.client.ApiClient(cfg))


def api_status(code: int, reason: str, message: str) -> dict[str, Any]:
    """A metav1.Status as the API server sends with a refusal."""
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason,
            "code": code}  # fmt: skip


@pytest.fixture
def loopback_api() -> Iterator[LoopbackAPI]:
    api = LoopbackAPI("")

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            api.requests.append(Request(self.command, self.path, body))
            code, answer = api.answer(self.command, self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


def runtime_for(api: LoopbackAPI | None = None, cache: Cache | None = None, **settings: Any) -> Runtime:
    """A controller runtime of its own (never the one an operator in this process may run), its client talking to
    ``api``."""
    config = OperatorConfig(settings=Settings(reconcile_workers=4, **settings))
    client = api.client() if api is not None else Client(4, api_client=kubernetes.client.ApiClient())
    return Runtime(config, client=client, cache=cache or Cache())
