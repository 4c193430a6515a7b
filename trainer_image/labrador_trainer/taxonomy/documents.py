"""Fetching a knowledge leaf's documents at their pinned commit (InstructLab: at least one .md or .pdf)."""

from __future__ import annotations

import fnmatch
import hashlib
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labrador_trainer.taxonomy.gitcmd import GitError, git

DOC_SUFFIXES = (".md", ".pdf")


@dataclass
class FetchResult:
    """Files written (relative to the leaf's document folder) or a problem with the YAML key it concerns."""

    files: list[str] = field(default_factory=list)
    commit: str | None = None
    error: str | None = None
    error_key: str = "document"


@dataclass
class DocumentFetcher:
    """Clones each document repository once per run (into ``cache``) and exports files at pinned commits."""

    cache: Path
    env: dict[str, str] | None = None
    _clones: dict[str, Path | GitError] = field(default_factory=dict)

    def _clone(self, repo: str) -> Path:
        got = self._clones.get(repo)
        if got is None:
            target = self.cache / hashlib.sha256(repo.encode()).hexdigest()[:16]
            try:
                if not target.exists():
                    git(["clone", "--quiet", "--no-checkout", "--", repo, str(target)], env=self.env)
                got = target
            except GitError as exc:
                got = exc
            self._clones[repo] = got
        if isinstance(got, GitError):
            raise got
        return got

    def fetch(self, document: Mapping[str, Any], dest: Path | None) -> FetchResult:
        """Resolve ``document`` (repo, commit, patterns); write matched files under ``dest`` when given."""
        repo, commit, patterns = document.get("repo"), document.get("commit"), document.get("patterns") or []
        if not isinstance(repo, str) or not isinstance(commit, str):
            return FetchResult(error="document needs string 'repo' and 'commit'")
        try:
            clone = self._clone(repo)
        except GitError as exc:
            return FetchResult(error=f"cannot fetch document repository {repo!r}: {exc}", error_key="document.repo")
        try:
            resolved = git(
                ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{commit}^{{commit}}"],
                cwd=clone,
                env=self.env,
            )
        except GitError:
            return FetchResult(error=f"commit {commit} not found in {repo!r}", error_key="document.commit")
        resolved = resolved.strip()
        names = git(["ls-tree", "-r", "--name-only", resolved], cwd=clone, env=self.env).splitlines()
        matched = sorted({n for n in names for p in patterns if isinstance(p, str) and fnmatch.fnmatchcase(n, p)})
        docs = [n for n in matched if n.lower().endswith(DOC_SUFFIXES)]
        if not docs:
            msg = f"document patterns {list(patterns)} match no .md or .pdf file in {repo!r} at {resolved[:12]}"
            return FetchResult(commit=resolved, error=msg, error_key="document.patterns")
        if dest is not None:
            for name in docs:
                blob = _show_bytes(clone, f"{resolved}:{name}", self.env)
                out = dest / name
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(blob)
        return FetchResult(files=docs, commit=resolved)


def _show_bytes(clone: Path, spec: str, env: dict[str, str] | None) -> bytes:
    proc = subprocess.run(["git", "cat-file", "-p", spec], cwd=clone, env=env, capture_output=True, check=False)
    if proc.returncode != 0:
        raise GitError(f"git cat-file failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout
