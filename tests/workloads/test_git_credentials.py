"""Git credentials go only to the host they belong to: real git over HTTPS on loopback (``git http-backend`` behind a
small TLS server that logs every Authorization header it receives), a taxonomy and its documents on three hosts."""

from __future__ import annotations

import base64
import re
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from labrador_trainer.cli import main as cli
from labrador_trainer.taxonomy.gitcmd import Credentials, CredentialsError, git_env
from labrador_trainer.taxonomy.sync import SyncOptions, sync_taxonomy
from tests.workloads.conftest import DOCS, TAXONOMY, commit_all, init_repo, run_git

pytestmark = pytest.mark.workloads

K = "knowledge/science/animals/birds/black_capped_chickadee/qna.yaml"


@dataclass
class GitHost:
    """One HTTPS git host: serves the repositories under ``root``; with ``login`` set, asks for it (401 otherwise);
    ``always_401`` plays a host that asks every client for credentials and serves nothing."""

    root: Path
    login: tuple[str, str] | None = None
    always_401: bool = False
    seen_auth: list[str | None] = field(default_factory=list)
    url: str = ""

    def decoded(self) -> list[str]:
        return [base64.b64decode(a.split(" ", 1)[1]).decode() for a in self.seen_auth if a]


def _handler(host: GitHost) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _serve(self) -> None:
            auth = self.headers.get("Authorization")
            host.seen_auth.append(auth)
            want = None
            if host.login:
                want = "Basic " + base64.b64encode(":".join(host.login).encode()).decode()
            if host.always_401 or (want and auth != want):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            env = {
                "GIT_PROJECT_ROOT": str(host.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_ADDR": "127.0.0.1",
            }
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            if self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=False).stdout
            head, _, payload = out.partition(b"\r\n\r\n")
            status, headers = 200, []
            for line in head.decode().split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _serve

    return Handler


@pytest.fixture
def hosts(
    tls: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, GitHost]]:
    ca, crt, key = tls
    monkeypatch.setenv("GIT_SSL_CAINFO", str(ca))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    made = {
        "taxonomy": GitHost(tmp_path / "tax-host", login=("alice", "tax-s3cret")),
        "docs": GitHost(tmp_path / "docs-host", login=("bob", "docs-s3cret")),
        "stranger": GitHost(tmp_path / "stranger-host", always_401=True),
    }
    servers = []
    for h in made.values():
        h.root.mkdir()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(h))
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        h.url = f"https://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    docs_sha = init_repo(DOCS, made["docs"].root / "knowledge-docs")
    shutil.copytree(TAXONOMY, made["taxonomy"].root / "taxonomy")
    made["taxonomy"].root.joinpath("docs-commit").write_text(docs_sha)
    try:
        yield made
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def _point_leaves(hosts: dict[str, GitHost], docs_host: str) -> None:
    """Every knowledge leaf's document.repo on ``docs_host``; the taxonomy committed on its own host."""
    root = hosts["taxonomy"].root / "taxonomy"
    sha = (hosts["taxonomy"].root / "docs-commit").read_text()
    for leaf in (root / "knowledge").rglob("qna.yaml"):
        text = re.sub(
            r"(?m)^(  repo: ).*$", lambda m: m.group(1) + f"{hosts[docs_host].url}/knowledge-docs", leaf.read_text()
        )
        leaf.write_text(re.sub(r"(?m)^(  commit: ).*$", lambda m: m.group(1) + sha, text))
    if not (root / ".git").exists():
        run_git(root, "init", "-q", "-b", "main")
    commit_all(root, f"documents on {docs_host}")


def test_taxonomy_credentials_never_reach_a_document_host(hosts: dict[str, GitHost], tmp_path: Path) -> None:
    """A community leaf points its documents at a host that answers 401: it gets no Authorization at all, while the
    taxonomy's own host gets the taxonomy's login."""
    _point_leaves(hosts, "stranger")
    creds = Credentials("alice", "tax-s3cret")
    report = sync_taxonomy(
        SyncOptions(url=f"{hosts['taxonomy'].url}/taxonomy", ref="main", dest=tmp_path / "snap", credentials=creds)
    )
    assert report.revision and any("cannot fetch" in e.message for e in report.errors), report.errors
    assert hosts["stranger"].seen_auth and all(a is None for a in hosts["stranger"].seen_auth)
    assert "alice:tax-s3cret" in hosts["taxonomy"].decoded()


def test_document_credentials_go_to_their_own_host_only(hosts: dict[str, GitHost], tmp_path: Path) -> None:
    _point_leaves(hosts, "docs")
    term = tmp_path / "term.json"
    tax_dir, docs_dir = tmp_path / "tax-creds", tmp_path / "docs-creds"
    for d, (user, pw, url) in ((tax_dir, ("alice", "tax-s3cret", None)),
                               (docs_dir, ("bob", "docs-s3cret", hosts["docs"].url))):  # fmt: skip
        d.mkdir()
        (d / "username").write_text(user)
        (d / "password").write_text(pw)
        if url:
            (d / "url").write_text(url)
    argv = ["taxonomy", "sync", "--url", f"{hosts['taxonomy'].url}/taxonomy", "--ref", "main", "--dest",
            str(tmp_path / "snap"), "--credentials-dir", str(tax_dir), "--documents-credentials-dir", str(docs_dir),
            "--termination-log", str(term)]  # fmt: skip
    assert cli(argv) == 0, term.read_text()
    assert (tmp_path / "snap" / "documents" / Path(K).parent / "chickadee.md").is_file()
    assert set(hosts["taxonomy"].decoded()) == {"alice:tax-s3cret"}
    assert set(hosts["docs"].decoded()) == {"bob:docs-s3cret"}


def test_no_credentials_over_plain_http(tmp_path: Path) -> None:
    opts = SyncOptions(url="http://127.0.0.1:9/taxonomy", ref="main", dest=tmp_path, credentials=Credentials("a", "b"))
    with pytest.raises(CredentialsError, match="never sent over plain http"):
        sync_taxonomy(opts)
    docs = SyncOptions(url=None, ref=None, dest=tmp_path, source_dir=tmp_path,
                       documents_credentials=Credentials("a", "b", url="http://docs.example.com"))  # fmt: skip
    with pytest.raises(CredentialsError, match="never sent over plain http"):
        sync_taxonomy(docs)


def test_the_environment_holds_no_prompt_and_no_secret_in_config(tmp_path: Path) -> None:
    with git_env([("https://example.com", Credentials("alice", "s3cret"))]) as env:
        assert "GIT_ASKPASS" not in env and env["GIT_TERMINAL_PROMPT"] == "0"
        config = [v for k, v in env.items() if k.startswith("GIT_CONFIG_")]
        assert not any("s3cret" in v for v in config)
        assert "credential.https://example.com.helper" in config
        # git itself answers only for the scope
        ask = "protocol=https\nhost={}\n\n"
        fill = ["git", "credential", "fill"]
        ok = subprocess.run(fill, input=ask.format("example.com"), env=env, capture_output=True, text=True)
        assert "password=s3cret" in ok.stdout
        other = subprocess.run(fill, input=ask.format("evil.example.org"), env=env, capture_output=True, text=True)
        assert "s3cret" not in other.stdout and other.returncode != 0


# -- ssh: a real sshd on loopback, git over ssh with the Secret's key and known_hosts ------------------------------
SSHD = Path("/usr/sbin/sshd")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path | int]]:
    assert SSHD.is_file(), "openssh-server is needed for the ssh credential tests (`make test` installs it)"
    import socket

    d = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "user_key", "other_host_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        f"PidFile {d / 'sshd.pid'}\nPermitRootLogin prohibit-password\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE)
    try:
        for _ in range(50):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            threading.Event().wait(0.1)
        yield {"dir": d, "port": port}
    finally:
        proc.terminate()
        proc.wait(10)


def _ssh_creds(d: Path, sshd: dict[str, Path | int], host_key: str | None) -> Path:
    d.mkdir()
    key = d / "ssh-privatekey"
    key.write_text((Path(sshd["dir"]) / "user_key").read_text())  # type: ignore[arg-type]
    key.chmod(0o600)
    if host_key is not None:
        pub = (Path(sshd["dir"]) / f"{host_key}.pub").read_text().split()  # type: ignore[arg-type]
        (d / "known_hosts").write_text(f"[127.0.0.1]:{sshd['port']} {pub[0]} {pub[1]}\n")
    return d


def test_ssh_key_with_strict_host_key_checking(sshd: dict[str, Path | int], tmp_path: Path) -> None:
    """The Secret's ssh-privatekey and known_hosts, as documented: a clone over ssh works against the host the
    known_hosts names; a host whose key differs is refused before any key is offered; no known_hosts, no ssh."""
    repo = tmp_path / "taxonomy"
    sha = init_repo(TAXONOMY, repo)
    url = f"ssh://root@127.0.0.1:{sshd['port']}{repo}"

    def sync(creds: Path, name: str) -> tuple[int, str]:
        term = tmp_path / f"{name}.json"
        code = cli(["taxonomy", "sync", "--url", url, "--ref", "main", "--dest", str(tmp_path / name), "--offline",
                    "--credentials-dir", str(creds), "--termination-log", str(term)])  # fmt: skip
        return code, term.read_text()

    code, term = sync(_ssh_creds(tmp_path / "good", sshd, "host_key"), "good")
    assert code == 0 and sha in term, term
    code, term = sync(_ssh_creds(tmp_path / "mitm", sshd, "other_host_key"), "mitm")
    assert code == 2 and "Host key verification failed" in term, term
    code, term = sync(_ssh_creds(tmp_path / "tofu", sshd, None), "tofu")
    assert code == 2 and "known_hosts" in term, term
