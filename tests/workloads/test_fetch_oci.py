"""`labrador-trainer model fetch` for oci:// against a real registry: CNCF distribution (hack/build-node.sh builds it
into ~/.cache/labrador/bin) on 127.0.0.1 with TLS (an openssl-made CA, trusted through REQUESTS_CA_BUNDLE) and
htpasswd auth (bcrypt, made with the system's libcrypt). The model is pushed with oras-py; the login reaches the
fetch as a docker config JSON file, the way a kubernetes.io/dockerconfigjson Secret is mounted into the fetch step.
Only its entry for the registry's host[:port] is used, and it goes to that host only: test doubles on other ports
record every request they get."""

from __future__ import annotations

import base64
import contextlib
import ctypes
import ctypes.util
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT
from tests.workloads.conftest import serve_tls

EXE = str(Path(sys.executable).with_name("labrador-trainer"))
USER, PASSWORD = "alice", "pa55-alice-never-printed"
WRONG = "wr0ng-pa55-never-printed"
STRANGER, STRANGER_PASSWORD = "mallory", "pa55-mallory-never-sent"
REPO = "models/tiny:v1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bcrypt(password: str) -> str:
    """A bcrypt hash (the only kind distribution's htpasswd accepts) from libcrypt (libxcrypt, in every Debian)."""
    name = ctypes.util.find_library("crypt")
    assert name, "libcrypt not found (Debian's libcrypt1 provides it)"
    lib = ctypes.CDLL(name)
    lib.crypt_gensalt.restype = lib.crypt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = lib.crypt_gensalt(b"$2b$", 5, None, 0)
    assert salt, "libcrypt cannot make a bcrypt salt"
    hashed = lib.crypt(password.encode(), salt)
    assert hashed and hashed.startswith(b"$2b$"), hashed
    return hashed.decode()


@dataclass(frozen=True)
class Registry:
    host: str  # 127.0.0.1:<port>
    ca: Path
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, tls: tuple[Path, Path, Path]) -> Iterator[Registry]:
    # hack/build-node.sh (`make node`, a prerequisite of `make test`) builds it once; on a warm cache it only
    # prints the directory
    build = subprocess.run(["bash", str(ROOT / "hack" / "build-node.sh")], stdout=subprocess.PIPE, text=True)
    if build.returncode != 0:
        pytest.fail(
            f"hack/build-node.sh could not build the registry (it needs go; see `make node`): rc {build.returncode}"
        )
    binary = Path(build.stdout.strip().splitlines()[-1]) / "registry"
    assert binary.is_file(), f"{binary} missing after hack/build-node.sh"
    ca, crt, key = tls
    d = tmp_path_factory.mktemp("registry")
    (d / "htpasswd").write_text(f"{USER}:{_bcrypt(PASSWORD)}\n")
    port = _free_port()
    (d / "config.yml").write_text(
        "version: 0.1\n"
        "log:\n  level: debug\n  formatter: text\n"
        f"storage:\n  filesystem:\n    rootdirectory: {d / 'store'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {crt}\n    key: {key}\n"
        f"auth:\n  htpasswd:\n    realm: labrador-test\n    path: {d / 'htpasswd'}\n"
    )
    log = d / "registry.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(binary), "serve", str(d / "config.yml")], stdout=out, stderr=subprocess.STDOUT)
    reg = Registry(f"127.0.0.1:{port}", ca, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"https://{reg.host}/v2/", verify=str(ca), timeout=2).status_code == 401:
                break
        except requests.RequestException:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, f"registry did not start: {reg.log_text()}"
        time.sleep(0.2)
    try:
        yield reg
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def model(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A small fake model pushed with oras-py (the right login): its files' sha256 by relative path."""
    import oras.client

    src = tmp_path_factory.mktemp("oci-model")
    (src / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": 2}))
    (src / "model.safetensors").write_bytes(os.urandom(300 * 1024))
    (src / "tokenizer").mkdir()
    (src / "tokenizer" / "tokenizer.json").write_text(json.dumps({"version": "1.0", "vocab": ["a", "b"]}))
    client = oras.client.OrasClient(auth_backend="basic", tls_verify=str(registry.ca))
    client.auth.set_basic_auth(USER, PASSWORD)
    with contextlib.chdir(src):  # oras-py pushes paths below the working directory, named as given
        client.push(target=f"{registry.host}/{REPO}", files=["config.json", "model.safetensors", "tokenizer"])
    return _checksums(src)


def _checksums(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".labrador-complete"
    }


def _auth(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def _config(path: Path, auths: dict[str, dict[str, str]]) -> Path:
    path.write_text(json.dumps({"auths": auths}))
    path.chmod(0o400)
    return path


def _fetch(uri: str, dest: Path, config: Path | None, ca: Path, **env: str) -> subprocess.CompletedProcess[str]:
    argv = [EXE, "model", "fetch", "--uri", uri, "--dest", str(dest)]
    if config is not None:
        argv += ["--registry-config", str(config)]
    full = {k: v for k, v in os.environ.items() if not k.startswith(("ORAS_", "DOCKER_"))}
    # a HOME of its own: no ~/.docker/config.json (or netrc) of the machine's can be read
    full.update(HOME=str(dest.parent / "home"), REQUESTS_CA_BUNDLE=str(ca), **env)
    return subprocess.run(argv, capture_output=True, text=True, env=full, timeout=120)


def _strangers(registry: Registry, double: str) -> dict[str, dict[str, str]]:
    """Logins for hosts that are not the registry's host[:port]: another port (a recording double), the same
    address without the port, the same port under another name, a longer name with the registry's as a prefix."""
    port = registry.host.rsplit(":", 1)[1]
    return {
        double: _auth(STRANGER, STRANGER_PASSWORD),
        "127.0.0.1": _auth(STRANGER, STRANGER_PASSWORD),
        f"https://localhost:{port}": {"username": STRANGER, "password": STRANGER_PASSWORD},
        f"{registry.host}.example.com": _auth(STRANGER, STRANGER_PASSWORD),
    }


@pytest.mark.parametrize(
    "key, entry",
    [
        ("{host}", _auth(USER, PASSWORD)),
        ("https://{host}", {"username": USER, "password": PASSWORD}),
        ("https://{host}/v1/", {**_auth(USER, PASSWORD), "email": "alice@example.com"}),
    ],
    ids=["host-auth", "https-username-password", "v1-url-auth"],
)
def test_the_registrys_login_pulls_identical_files(
    registry: Registry, model: dict[str, str], tmp_path: Path, key: str, entry: dict[str, str], double: Double
) -> None:
    auths = {**_strangers(registry, double.host), key.format(host=registry.host): entry}
    config = _config(tmp_path / "config.json", auths)
    dest = tmp_path / "cache" / "tiny"
    out = _fetch(f"oci://{registry.host}/{REPO}", dest, config, registry.ca)
    assert out.returncode == 0, out.stderr
    assert _checksums(dest) == model
    assert (dest / ".labrador-complete").read_text() == f"oci://{registry.host}/{REPO}\n"
    for secret in (PASSWORD, STRANGER_PASSWORD, entry.get("auth", PASSWORD)):
        assert secret not in out.stdout + out.stderr
    assert double.requests == []
    again = _fetch(f"oci://{registry.host}/{REPO}", dest, config, registry.ca)
    assert again.returncode == 0 and "already in the workspace cache" in again.stderr, again.stderr


def test_a_wrong_password_exits_1_with_the_registrys_answer_and_no_password(
    registry: Registry, model: dict[str, str], tmp_path: Path
) -> None:
    config = _config(tmp_path / "config.json", {registry.host: _auth(USER, WRONG)})
    dest = tmp_path / "cache" / "tiny"
    before = len(registry.log_text())
    out = _fetch(f"oci://{registry.host}/{REPO}", dest, config, registry.ca)
    assert out.returncode == 1, out.stderr
    assert "fetch failed" in out.stderr and "Traceback" not in out.stderr
    assert "401" in out.stderr and f"{registry.host} rejected the login in {config}" in out.stderr, out.stderr
    assert WRONG not in out.stdout + out.stderr and _auth(USER, WRONG)["auth"] not in out.stderr
    assert not dest.exists() and [p.name for p in dest.parent.iterdir()] == [".tiny.lock"]
    # the registry got a login and refused it (distribution's words for a wrong password)
    assert "authentication failure" in registry.log_text()[before:]


def test_logins_for_other_hosts_are_never_sent(
    registry: Registry, model: dict[str, str], tmp_path: Path, double: Double
) -> None:
    """The registry needs a login and the config has one for every host but its own: the pull is anonymous,
    refused with the registry's answer; nothing reaches the other hosts and the registry sees no username."""
    config = _config(tmp_path / "config.json", _strangers(registry, double.host))
    dest = tmp_path / "cache" / "tiny"
    # nor does a ~/.netrc (requests reads one by itself): the login comes from the registry config or nowhere
    (tmp_path / "cache" / "home").mkdir(parents=True)
    netrc = tmp_path / "cache" / "home" / ".netrc"
    netrc.write_text(f"machine 127.0.0.1 login {STRANGER} password {STRANGER_PASSWORD}\n")
    netrc.chmod(0o600)
    before = len(registry.log_text())
    out = _fetch(f"oci://{registry.host}/{REPO}", dest, config, registry.ca)
    assert out.returncode == 1, out.stderr
    assert f"there is none for {registry.host}" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert STRANGER_PASSWORD not in out.stdout + out.stderr
    assert double.requests == []
    seen = registry.log_text()[before:]
    assert "/v2/models/tiny/manifests/v1" in seen and STRANGER not in seen and USER not in seen
    # distribution's words for a request without any Basic credentials, never those for a refused login
    assert "invalid authorization credential" in seen and "authentication failure" not in seen
    assert not dest.exists()


def test_the_entry_is_chosen_by_exact_host_and_port(tmp_path: Path) -> None:
    """docker's key forms name a host[:port]; an exact ``host`` key wins over a URL form of it; no prefix, suffix or
    port-less match ever counts; the login's repr holds no secret."""
    from labrador_trainer.oci_auth import load_login

    config = _config(
        tmp_path / "config.json",
        {
            "https://r.example/v1/": _auth("url-form", "p1"),
            "r.example": _auth("exact", "p2"),
            "R.Example:5000": {"username": "port", "password": "p3"},
            "https://r.example.evil": _auth("suffix", "p4"),
            "http://q.example": _auth("http-key", "p5"),
        },
    )
    picked = {h: load_login(config, h) for h in ("r.example", "r.example:5000", "q.example", "r.example:443", "ex")}
    assert {h: (x.username, x.password) if x else None for h, x in picked.items()} == {
        "r.example": ("exact", "p2"),
        "r.example:5000": ("port", "p3"),
        "q.example": ("http-key", "p5"),  # the key's scheme says nothing: the login still goes over https only
        "r.example:443": None,
        "ex": None,
    }
    assert "p2" not in repr(picked["r.example"]) and "auths['r.example']" in repr(picked["r.example"])


def test_a_malformed_config_exits_2_without_echoing_it(registry: Registry, tmp_path: Path) -> None:
    uri = f"oci://{registry.host}/{REPO}"
    cases = {
        "not-json": '{"auths": {"' + registry.host + '": {"auth": "' + PASSWORD,
        "no-auths": json.dumps({"credsStore": PASSWORD}),
        "auth-not-base64": json.dumps({"auths": {registry.host: {"auth": PASSWORD + "!"}}}),
        "auth-without-colon": json.dumps(
            {"auths": {registry.host: {"auth": base64.b64encode(PASSWORD.encode()).decode()}}}
        ),
        "no-credentials": json.dumps({"auths": {registry.host: {"email": "a@example.com"}}}),
    }
    for name, text in cases.items():
        config = tmp_path / f"{name}.json"
        config.write_text(text)
        out = _fetch(uri, tmp_path / name / "m", config, registry.ca)
        assert out.returncode == 2, (name, out.stderr)
        assert str(config) in out.stderr and "Traceback" not in out.stderr, (name, out.stderr)
        assert PASSWORD not in out.stdout + out.stderr, name
        assert not (tmp_path / name / "m").exists()
    out = _fetch(uri, tmp_path / "missing" / "m", tmp_path / "no-such.json", registry.ca)
    assert out.returncode == 2 and "cannot read the registry config" in out.stderr, out.stderr


def test_no_login_over_plain_http(registry: Registry, tmp_path: Path) -> None:
    """ORAS_INSECURE=1 is plain http (oras-py's ``insecure``): a login is refused before any connection."""
    config = _config(tmp_path / "config.json", {registry.host: _auth(USER, PASSWORD)})
    out = _fetch(f"oci://{registry.host}/{REPO}", tmp_path / "m", config, registry.ca, ORAS_INSECURE="1")
    assert out.returncode == 2 and "only sent over https" in out.stderr, out.stderr
    assert PASSWORD not in out.stdout + out.stderr


# --- test doubles: what a host that is not the login's gets, and token services ------------------------------------


@dataclass
class Double:
    """An https server on 127.0.0.1 that records every request (path, Authorization header, body) and answers with
    ``status``, ``headers`` and ``body`` (a registry's challenge, say)."""

    host: str = ""
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    status: int = 404
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"errors": [{"code": "NAME_UNKNOWN", "message": "nothing here"}]}'


def _serve(double: Double, tls: tuple[Path, Path, Path]) -> ThreadingHTTPServer:

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode(errors="replace") if length else ""
            double.requests.append((self.path, self.headers.get("Authorization") or "", body))
            self.send_response(double.status)
            for k, v in double.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(double.body)))
            self.end_headers()
            self.wfile.write(double.body)

        do_GET = do_HEAD = do_POST = _answer

    server = serve_tls(Handler, tls)
    double.host = f"127.0.0.1:{server.server_address[1]}"
    return server


@contextlib.contextmanager
def _serving(d: Double, tls: tuple[Path, Path, Path]) -> Iterator[Double]:
    server = _serve(d, tls)
    try:
        yield d
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def double(tls: tuple[Path, Path, Path]) -> Iterator[Double]:
    with _serving(Double(), tls) as d:
        yield d


@pytest.fixture
def token_service(tls: tuple[Path, Path, Path]) -> Iterator[Double]:
    with _serving(Double(status=200, body=b'{"token": "t0ken"}'), tls) as d:
        yield d


def test_a_basic_challenge_from_another_host_gets_no_login(registry: Registry, tmp_path: Path, double: Double) -> None:
    """A host that asks for a login gets the login for its own host[:port] only: here there is none."""
    double.status, double.headers = 401, {"WWW-Authenticate": 'Basic realm="x"'}
    config = _config(
        tmp_path / "config.json", {registry.host: _auth(USER, PASSWORD), "127.0.0.1": _auth(USER, PASSWORD)}
    )
    out = _fetch(f"oci://{double.host}/{REPO}", tmp_path / "m", config, registry.ca)
    assert out.returncode == 1 and f"there is none for {double.host}" in out.stderr, out.stderr
    assert double.requests and all(auth == "" for _, auth, _ in double.requests), double.requests


def test_a_token_service_on_another_host_gets_no_login(
    tmp_path: Path, registry: Registry, double: Double, token_service: Double
) -> None:
    """Token auth (Bearer): the login is sent to the token service only when it is https on the registry's own
    host[:port]; one elsewhere is refused (and was never contacted), while an anonymous pull may still ask it."""
    realm = f"https://{token_service.host}/token"
    double.status = 401
    double.headers = {"WWW-Authenticate": f'Bearer realm="{realm}",service="reg",scope="repository:models/tiny:pull"'}
    config = _config(tmp_path / "config.json", {double.host: _auth(USER, PASSWORD)})
    out = _fetch(f"oci://{double.host}/{REPO}", tmp_path / "m", config, registry.ca)
    assert out.returncode == 1, out.stderr
    assert f"its token service is {realm}" in out.stderr and f"only sent to https://{double.host}" in out.stderr
    assert token_service.requests == [] and all(auth == "" for _, auth, _ in double.requests)
    assert PASSWORD not in out.stdout + out.stderr
    # anonymous: the token service is asked without credentials, its token goes to the registry host only
    out = _fetch(f"oci://{double.host}/{REPO}", tmp_path / "m", None, registry.ca)
    assert out.returncode == 1, out.stderr
    assert token_service.requests and all(auth == "" for _, auth, _ in token_service.requests)
    assert (
        "service=reg" in token_service.requests[0][0]
        and "scope=repository%3Amodels%2Ftiny%3Apull" in (token_service.requests[0][0])
    )
    assert any(auth == "Bearer t0ken" for _, auth, _ in double.requests)


IDENTITY_TOKEN = "refresh-t0ken-never-printed"


@dataclass
class TokenRegistry:
    """A registry double with token auth (Bearer) whose token service is on its own host[:port], the way Quay,
    GHCR, Harbor and ACR run it: /token takes Basic credentials (GET) or an identity token (OAuth2 refresh grant,
    POST); /v2/ serves one artifact to the bearer of the token it issued."""

    files: dict[str, bytes]
    host: str = ""
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # (method path, Authorization, body)

    def manifest(self) -> bytes:
        layers = [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": f"sha256:{hashlib.sha256(data).hexdigest()}",
                "size": len(data),
                "annotations": {"org.opencontainers.image.title": name},
            }
            for name, data in self.files.items()
        ]
        config = {"mediaType": "application/vnd.oci.empty.v1+json", "digest": _EMPTY, "size": 2}
        return json.dumps({"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": layers}).encode()


MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_EMPTY = f"sha256:{hashlib.sha256(b'{}').hexdigest()}"


@pytest.fixture
def token_registry(tls: tuple[Path, Path, Path]) -> Iterator[TokenRegistry]:
    from urllib.parse import parse_qs, urlsplit

    reg = TokenRegistry({"config.json": b'{"model_type": "llama"}', "weights.bin": os.urandom(64 * 1024)})
    blobs = {f"sha256:{hashlib.sha256(d).hexdigest()}": d for d in reg.files.values()}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str = "application/json", **headers: str) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k.replace("_", "-"), v)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            auth = self.headers.get("Authorization") or ""
            reg.seen.append((f"{self.command} {self.path}", auth, body))
            url = urlsplit(self.path)
            if url.path == "/token":
                form = parse_qs(body) if self.command == "POST" else parse_qs(url.query)
                ok = (
                    form.get("grant_type") == ["refresh_token"] and form.get("refresh_token") == [IDENTITY_TOKEN]
                    if self.command == "POST"
                    else auth == "Basic " + _auth(USER, PASSWORD)["auth"]
                )
                if ok and form.get("service") == ["reg"] and form.get("scope") == ["repository:models/tiny:pull"]:
                    return self._send(200, b'{"access_token": "acc3ss"}')
                return self._send(401, b'{"error": "invalid_grant"}')
            if auth != "Bearer acc3ss":
                challenge = f'Bearer realm="https://{reg.host}/token",service="reg",scope="repository:models/tiny:pull"'
                return self._send(401, b'{"errors": [{"code": "UNAUTHORIZED"}]}', WWW_Authenticate=challenge)
            if url.path == "/v2/models/tiny/manifests/v1":
                return self._send(200, reg.manifest(), MANIFEST)
            digest = url.path.rsplit("/", 1)[1]
            if url.path.startswith("/v2/models/tiny/blobs/") and digest in blobs:
                return self._send(200, blobs[digest], "application/octet-stream")
            return self._send(404, b'{"errors": [{"code": "NOT_FOUND", "message": "unknown"}]}')

        do_GET = do_HEAD = do_POST = _answer

    server = serve_tls(Handler, tls)
    reg.host = f"127.0.0.1:{server.server_address[1]}"
    try:
        yield reg
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "entry",
    [_auth(USER, PASSWORD), {"username": "<token>", "identitytoken": IDENTITY_TOKEN}],
    ids=["basic-login", "identitytoken"],
)
def test_token_auth_on_the_registrys_own_host(
    token_registry: TokenRegistry, registry: Registry, tmp_path: Path, entry: dict[str, str]
) -> None:
    """The login goes to the token service on the registry's own host only (Basic for a username and password, the
    OAuth2 refresh grant for an identitytoken); the registry gets the bearer token, never the login."""
    config = _config(tmp_path / "config.json", {token_registry.host: entry})
    dest = tmp_path / "cache" / "m"
    out = _fetch(f"oci://{token_registry.host}/{REPO}", dest, config, registry.ca)
    assert out.returncode == 0, out.stderr
    assert {p: (dest / p).read_bytes() for p in token_registry.files} == token_registry.files
    token_calls = [s for s in token_registry.seen if s[0].startswith(("GET /token", "POST /token"))]
    assert token_calls, token_registry.seen
    registry_calls = [s for s in token_registry.seen if " /v2/" in s[0]]
    assert {auth for _, auth, _ in registry_calls} <= {"", "Bearer acc3ss"}
    assert not any(IDENTITY_TOKEN in body or PASSWORD in body for _, _, body in registry_calls)
    if "identitytoken" in entry:
        assert all(c[0] == "POST /token" and c[1] == "" and IDENTITY_TOKEN in c[2] for c in token_calls)
    for secret in (PASSWORD, IDENTITY_TOKEN, "acc3ss"):
        assert secret not in out.stdout + out.stderr
    # a refused identity token: exit 1, the token service's answer, no token in the output
    stale = _config(tmp_path / "stale.json", {token_registry.host: {"identitytoken": "stale-" + IDENTITY_TOKEN}})
    out = _fetch(f"oci://{token_registry.host}/{REPO}", tmp_path / "cache" / "n", stale, registry.ca)
    assert out.returncode == 1 and "invalid_grant" in out.stderr, out.stderr
    assert IDENTITY_TOKEN not in out.stdout + out.stderr


def test_export_pushes_an_artifact_that_fetch_brings_back_identical(
    registry: Registry, model: dict[str, str], tmp_path: Path
) -> None:
    """`model export` to oci:// with the registry's login: the registry's manifest digest comes back, and
    `model fetch` of that digest gives the very files the workspace held (a directory as one layer)."""
    src = tmp_path / "model"
    (src / "tokenizer").mkdir(parents=True)
    (src / "config.json").write_text(json.dumps({"model_type": "llama", "exported": True}))
    (src / "model.safetensors").write_bytes(os.urandom(256 * 1024))
    (src / "tokenizer" / "tokenizer.json").write_text(json.dumps({"version": "1.0"}))
    config = _config(tmp_path / "config.json", {registry.host: _auth(USER, PASSWORD)})
    log = tmp_path / "termination-log"
    argv = [EXE, "model", "export", "--src", str(src), "--uri", f"oci://{registry.host}/models/exported:v1",
            "--registry-config", str(config), f"--termination-log={log}"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORAS_", "DOCKER_"))}
    env.update(HOME=str(tmp_path / "home"), REQUESTS_CA_BUNDLE=str(registry.ca))
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    summary = json.loads(log.read_text())
    assert summary["digest"].startswith("sha256:") and summary["files"] == 3
    assert PASSWORD not in out.stdout + out.stderr + log.read_text()
    dest = tmp_path / "cache" / "exported"
    back = _fetch(f"oci://{registry.host}/models/exported@{summary['digest']}", dest, config, registry.ca)
    assert back.returncode == 0, back.stderr
    assert _checksums(dest) == _checksums(src)
    # without the login the registry refuses the push: exit 1 with its answer, nothing secret
    anon = subprocess.run([*argv[:7], f"--termination-log={log}"], capture_output=True, text=True, env=env, timeout=120)
    assert anon.returncode == 1 and "export failed" in anon.stderr and "Traceback" not in anon.stderr, anon.stderr
    assert json.loads(log.read_text())["status"] == "Failed"
