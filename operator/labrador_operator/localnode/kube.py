"""A small synchronous REST client on the current kubeconfig: JSON dicts in and out, streaming watches.

The ``kubernetes`` package loads the kubeconfig (tokens, client certificates, exec plugins); requests go through
urllib3 so the runner controls patch content types and reads watch streams line by line.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

import kubernetes
import urllib3

Obj = dict[str, Any]
STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"


class ApiError(Exception):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body


class Kube:
    """The API server named by the kubeconfig (``KUBECONFIG`` or ``~/.kube/config``; in-cluster as a fallback)."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        cfg = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=cfg, persist_config=False
            )
        except kubernetes.config.ConfigException:
            if kubeconfig:
                raise
            kubernetes.config.load_incluster_config(client_configuration=cfg)
        self.cfg = cfg
        self.server = cfg.host.rstrip("/")
        self._lock = threading.Lock()
        self.http = urllib3.PoolManager(
            maxsize=32,
            cert_reqs="CERT_REQUIRED" if cfg.verify_ssl else "CERT_NONE",
            ca_certs=cfg.ssl_ca_cert,
            cert_file=cfg.cert_file,
            key_file=cfg.key_file,
            assert_hostname=cfg.assert_hostname,
        )

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        with self._lock:
            if self.cfg.refresh_api_key_hook is not None:
                self.cfg.refresh_api_key_hook(self.cfg)
            headers = {"Accept": "application/json", "User-Agent": "labrador-local"}
            for setting in self.cfg.auth_settings().values():
                if setting.get("in") == "header" and setting.get("value"):
                    headers[setting["key"]] = setting["value"]
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def request(
        self,
        method: str,
        path: str,
        body: Obj | None = None,
        params: dict[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> Obj:
        url = self.server + path + (("?" + urllib.parse.urlencode(params)) if params else "")
        data = json.dumps(body).encode() if body is not None else None
        r = self.http.request(
            method,
            url,
            body=data,
            headers=self._headers(content_type if data is not None else None),
            timeout=urllib3.Timeout(connect=10, read=timeout),
            retries=False,
        )
        text = r.data.decode(errors="replace")
        if r.status >= 300:
            raise ApiError(method, path, r.status, text)
        return json.loads(text) if text else {}

    def get(self, path: str, **params: Any) -> Obj | None:
        """GET, or None on 404."""
        try:
            return self.request("GET", path, params=params or None)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def patch(self, path: str, body: Obj, content_type: str = STRATEGIC) -> Obj:
        return self.request("PATCH", path, body, content_type=content_type)

    def watch(self, path: str, params: dict[str, Any], timeout: float) -> Iterator[Obj]:
        """Yield watch events ({type, object}) until the server ends the stream."""
        query = {**params, "watch": "true", "timeoutSeconds": int(timeout)}
        r = self.http.request(
            "GET",
            self.server + path + "?" + urllib.parse.urlencode(query),
            headers=self._headers(),
            preload_content=False,
            timeout=urllib3.Timeout(connect=10, read=timeout + 15),
            retries=False,
        )
        try:
            if r.status >= 300:
                raise ApiError("WATCH", path, r.status, r.read().decode(errors="replace"))
            buf = b""
            for chunk in r.stream(65536, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            r.release_conn()


def pod_path(namespace: str, name: str, sub: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}" + (f"/{sub}" if sub else "")
