"""Running git with argv lists. Credentials reach git only through a credential helper scoped to the one host they
belong to (git's own ``credential.<url>.helper`` matching, configured through the environment), never argv, URLs
or a prompt: a ``document.repo`` on another host — a community taxonomy is merged from strangers — gets nothing, and
no credential is sent over plain ``http://``."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

#: reads the scope's variables at run time: the helper text holds no secret, and git runs it only for its scope
_HELPER = (
    '!f() { test "$1" = get || exit 0; '
    'printf \'username=%s\\npassword=%s\\n\' "$LABRADOR_GIT_USERNAME_{i}" "$LABRADOR_GIT_PASSWORD_{i}"; }; f'
)


#: git failures the user must fix (retrying cannot help); anything else — DNS, refused or reset connections, time-outs,
#: 5xx, a dropped transfer — is taken as transient and the sync is retried
_USER_FAILURES = re.compile(
    r"Authentication failed|could not read (Username|Password)|terminal prompts disabled|Repository not found|"
    r"does not appear to be a git repository|not found in the repository|The requested URL returned error: 40[134]|"
    r"Permission denied|Invalid username or password|repository .* not found|No such file or directory|"
    r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED",
    re.IGNORECASE,
)


class GitError(RuntimeError):
    """A git command failed; the message holds git's stderr (never credentials: they are not in argv)."""

    @property
    def transient(self) -> bool:
        """Worth another try later (network, server), as opposed to a wrong URL, ref or login."""
        return not _USER_FAILURES.search(str(self))


class CredentialsError(ValueError):
    """Credentials that must not be used as configured (plain http, no host to scope them to): a user error."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    #: ``scheme://host[:port]`` they belong to (a Secret's optional ``url`` key); None: the repository's own host
    url: str | None = None

    def __repr__(self) -> str:  # never print the secret
        return f"Credentials(username={self.username!r}, password=***, url={self.url!r})"

    @classmethod
    def load(cls, credentials_dir: Path | None = None) -> Credentials | None:
        """From files ``username``/``password`` (and optional ``url``) in ``credentials_dir``, else env
        GIT_USERNAME/GIT_PASSWORD."""
        if credentials_dir is not None:
            user, pw, url = (credentials_dir / n for n in ("username", "password", "url"))
            if user.is_file() and pw.is_file():
                return cls(user.read_text().strip(), pw.read_text().strip(), url.read_text().strip() or None
                           if url.is_file() else None)  # fmt: skip
        user_env, pw_env = os.environ.get("GIT_USERNAME"), os.environ.get("GIT_PASSWORD")
        if user_env is not None and pw_env is not None:
            return cls(user_env, pw_env)
        return None


@dataclass(frozen=True)
class SshCredentials:
    """A Secret's ``ssh-privatekey`` and ``known_hosts`` as mounted files: git runs ssh with that key only and
    strict host key checking against those hosts only (a repository on any other host fails before it
    authenticates)."""

    private_key: Path
    known_hosts: Path

    @classmethod
    def load(cls, credentials_dir: Path | None) -> SshCredentials | None:
        if credentials_dir is None or not (credentials_dir / "ssh-privatekey").is_file():
            return None
        known = credentials_dir / "known_hosts"
        if not known.is_file() or not known.read_text().strip():
            raise CredentialsError(
                "ssh credentials need the Secret's known_hosts key (the server's host key, e.g. from ssh-keyscan): "
                "hosts are never trusted on first use"
            )
        return cls(credentials_dir / "ssh-privatekey", known)

    def command(self) -> str:
        """GIT_SSH_COMMAND (git runs it through a shell: every path is quoted)."""
        q = shlex.quote
        return (
            f"ssh -F /dev/null -i {q(str(self.private_key))} -o IdentitiesOnly=yes -o IdentityAgent=none "
            f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={q(str(self.known_hosts))} "
            "-o GlobalKnownHostsFile=/dev/null -o BatchMode=yes -o PasswordAuthentication=no"
        )


def scope_of(url: str) -> str | None:
    """``https://host[:port]`` of a repository URL — what a credential is scoped to; None where no password is ever
    asked (file://, local paths, ssh, scp-like). Plain ``http://`` is refused: a password would cross in clear."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "http":
        raise CredentialsError(
            f"credentials are never sent over plain http:// ({parts.hostname}): use an https:// URL for this repository"
        )
    if scheme != "https" or not parts.hostname:
        return None
    host = parts.hostname.lower()
    return f"https://{host}:{parts.port}" if parts.port else f"https://{host}"


@contextmanager
def git_env(
    scoped: Sequence[tuple[str, Credentials]] = (), ssh: SshCredentials | None = None
) -> Iterator[dict[str, str]]:
    """Environment for git: never a prompt, no inherited credential helper, and for each ``(scope, credentials)``
    a helper that answers only requests to that scope (``scope_of``); with ``ssh``, ssh runs with that key and
    known_hosts only."""
    drop = ("GIT_ASKPASS", "SSH_ASKPASS", "GIT_SSH", "GIT_SSH_COMMAND", "SSH_AUTH_SOCK")
    env = {k: v for k, v in os.environ.items() if k not in drop and
           not k.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_", "LABRADOR_GIT_"))}  # fmt: skip
    if ssh is not None:
        env["GIT_SSH_COMMAND"] = ssh.command()
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.setdefault("GIT_AUTHOR_NAME", "labrador")
    env.setdefault("GIT_AUTHOR_EMAIL", "labrador@localhost")
    env.setdefault("GIT_COMMITTER_NAME", "labrador")
    env.setdefault("GIT_COMMITTER_EMAIL", "labrador@localhost")
    config = [("credential.helper", "")]  # an empty helper resets any configured on the host or in the image
    for i, (scope, creds) in enumerate(scoped):
        config.append((f"credential.{scope}.helper", _HELPER.replace("{i}", str(i))))
        env[f"LABRADOR_GIT_USERNAME_{i}"] = creds.username
        env[f"LABRADOR_GIT_PASSWORD_{i}"] = creds.password
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for n, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{n}"], env[f"GIT_CONFIG_VALUE_{n}"] = key, value
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


def resolve_ref(clone: Path, ref: str, env: dict[str, str] | None = None) -> str:
    """The commit a user's ref names in a fresh clone: a commit id, a tag, or a branch (local or ``origin/``).
    ``--end-of-options`` keeps a ref such as ``--upload-pack=…`` from being read as an option (the API also forbids a
    leading ``-``); the checkout that follows gets the hex commit id only."""
    for candidate in (ref, f"refs/remotes/origin/{ref}"):
        try:
            out = git(
                ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{candidate}^{{commit}}"], cwd=clone, env=env
            )
        except GitError:
            continue
        return out.strip()
    raise GitError(f"ref {ref!r} not found in the repository (not a branch, tag or commit)")
