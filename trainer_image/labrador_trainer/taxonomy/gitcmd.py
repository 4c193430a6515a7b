"""Running git with argv lists; https credentials only through a GIT_ASKPASS helper and the environment."""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_ASKPASS = """#!/bin/sh
case "$1" in
  Username*|username*) printf '%s\\n' "$LABRADOR_GIT_USERNAME" ;;
  *) printf '%s\\n' "$LABRADOR_GIT_PASSWORD" ;;
esac
"""


class GitError(RuntimeError):
    """A git command failed; the message holds git's stderr (never credentials: they are not in argv)."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never print the secret
        return f"Credentials(username={self.username!r}, password=***)"

    @classmethod
    def load(cls, credentials_dir: Path | None = None) -> Credentials | None:
        """From files ``username``/``password`` in ``credentials_dir``, else env GIT_USERNAME/GIT_PASSWORD."""
        if credentials_dir is not None:
            user, pw = credentials_dir / "username", credentials_dir / "password"
            if user.is_file() and pw.is_file():
                return cls(user.read_text().strip(), pw.read_text().strip())
        user_env, pw_env = os.environ.get("GIT_USERNAME"), os.environ.get("GIT_PASSWORD")
        if user_env is not None and pw_env is not None:
            return cls(user_env, pw_env)
        return None


@contextmanager
def git_env(credentials: Credentials | None = None) -> Iterator[dict[str, str]]:
    """Environment for git: no prompts; with credentials, an askpass script reading them from env."""
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.setdefault("GIT_AUTHOR_NAME", "labrador")
    env.setdefault("GIT_AUTHOR_EMAIL", "labrador@localhost")
    env.setdefault("GIT_COMMITTER_NAME", "labrador")
    env.setdefault("GIT_COMMITTER_EMAIL", "labrador@localhost")
    if credentials is None:
        yield env
        return
    with tempfile.TemporaryDirectory(prefix="labrador-askpass-") as tmp:
        script = Path(tmp) / "askpass.sh"
        script.write_text(_ASKPASS)
        script.chmod(stat.S_IRWXU)
        env.update(
            GIT_ASKPASS=str(script),
            LABRADOR_GIT_USERNAME=credentials.username,
            LABRADOR_GIT_PASSWORD=credentials.password,
        )
        yield env


def git(
    args: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> str:
    """Run ``git ARGS``; return stdout, raise GitError with stderr on failure."""
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {args[0]} timed out after {timeout:.0f}s") from exc
    if proc.returncode != 0:
        raise GitError(f"git {args[0]} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout
