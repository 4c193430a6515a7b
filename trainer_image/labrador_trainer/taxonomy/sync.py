"""``taxonomy sync``: clone at a ref, validate, fetch documents, write a snapshot with a ``taxonomy.json`` report."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from labrador_trainer.taxonomy.budget import Counter
from labrador_trainer.taxonomy.documents import DocumentFetcher
from labrador_trainer.taxonomy.gitcmd import (
    Credentials,
    CredentialsError,
    SshCredentials,
    git,
    git_env,
    resolve_ref,
    scope_of,
)
from labrador_trainer.taxonomy.models import Report
from labrador_trainer.taxonomy.validate import ValidateOptions, validate_taxonomy

REPORT_NAME = "taxonomy.json"
log = logging.getLogger(__name__)


@dataclass
class SyncOptions:
    url: str | None
    ref: str | None
    dest: Path
    path: str = ""
    base: str | None = None
    offline: bool = False
    count: Counter | None = None
    credentials: Credentials | None = None
    #: an ssh key and known_hosts for ssh:// and git@host: URLs (the taxonomy's own and its documents')
    ssh: SshCredentials | None = None
    #: for the knowledge documents' repositories: sent only to the host of their ``url`` (default: the taxonomy's)
    documents_credentials: Credentials | None = None
    #: a taxonomy already on disk (a mounted ConfigMap or volume) instead of a git clone
    source_dir: Path | None = None


def content_revision(root: Path) -> str:
    """A revision for a taxonomy that is not in git: a hash of its files' paths and contents."""
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file() and ".git" not in p.parts):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return f"sha256-{h.hexdigest()[:16]}"


def credential_scopes(options: SyncOptions) -> list[tuple[str, Credentials]]:
    """Each credential with the one ``https://host[:port]`` it may be sent to. Raises CredentialsError for plain
    http or for document credentials with no host to belong to."""
    home = scope_of(options.url) if options.url else None
    scoped: list[tuple[str, Credentials]] = []
    for creds, what in ((options.credentials, "git"), (options.documents_credentials, "documents")):
        if creds is None:
            continue
        scope = scope_of(creds.url) if creds.url else home
        if scope is None:
            if creds.url or what == "documents":
                raise CredentialsError(
                    f"{what} credentials: no https host to send them to (give the Secret a 'url' key such as "
                    "https://github.com)"
                )
            scheme = urlsplit(options.url or "").scheme or "a local path"
            log.info("the repository needs no password (%s): git credentials not used", scheme)
            continue
        scoped.append((scope, creds))
    return scoped


def sync_taxonomy(options: SyncOptions) -> Report:
    """Snapshot: ``DEST/taxonomy/`` (the tree at ``--path``), ``DEST/documents/<leaf>/``, ``DEST/taxonomy.json``."""
    dest = options.dest
    dest.mkdir(parents=True, exist_ok=True)
    env_cm = git_env(credential_scopes(options), options.ssh)
    with env_cm as env, tempfile.TemporaryDirectory(prefix="labrador-sync-") as tmp:
        if options.source_dir is not None:
            clone = options.source_dir
            revision = content_revision(clone)
        else:
            if not options.url or not options.ref:
                raise ValueError("taxonomy sync needs --url and --ref, or --source-dir")
            clone = Path(tmp) / "repo"
            git(["clone", "--quiet", "--no-checkout", "--", options.url, str(clone)], env=env)
            revision = resolve_ref(clone, options.ref, env)
            git(["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", revision], cwd=clone, env=env)
        root = clone / options.path if options.path else clone
        if not root.is_dir():
            raise FileNotFoundError(f"path {options.path!r} does not exist in {options.ref}")
        for sub in ("taxonomy", "documents"):
            shutil.rmtree(dest / sub, ignore_errors=True)
        vopts = ValidateOptions(
            base=options.base,
            offline=options.offline,
            count=options.count,
            documents_dest=dest / "documents",
            git_env=env,
        )
        if not options.offline:
            vopts = replace(vopts, fetcher=DocumentFetcher(Path(tmp) / "docs", env=env))
            (Path(tmp) / "docs").mkdir()
        report = validate_taxonomy(root, vopts)
        shutil.copytree(root, dest / "taxonomy", ignore=shutil.ignore_patterns(".git"))
    report.revision = revision
    (dest / REPORT_NAME).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report


#: a snapshot directory's name: the sync Job that wrote it (`<taxonomy>-sync-g<generation>[-w<window>]`)
_SNAPSHOT_NAME = re.compile(r".*-sync-g\d+(-w\d+)?$")


def prune_snapshots(dest: Path, keep_last: int, keep: Sequence[Path] = ()) -> list[Path]:
    """Delete older snapshots beside ``dest`` (the one just written): every sibling named like a sync Job's snapshot
    except the ``keep_last`` newest (``dest`` counts as one) and those in ``keep`` (pinned by a SyntheticDataJob
    that is still running). Returns what was deleted. ``keep_last`` 0 keeps everything."""
    if keep_last <= 0 or not dest.parent.is_dir():
        return []
    pinned = {p.resolve() for p in keep} | {dest.resolve()}
    others = sorted(
        (
            d
            for d in dest.parent.iterdir()
            if d.is_dir() and _SNAPSHOT_NAME.match(d.name) and d.resolve() != dest.resolve()
        ),
        key=lambda d: d.stat().st_mtime,
        reverse=True,
    )
    gone = []
    for d in others[max(keep_last - 1, 0) :]:
        if d.resolve() in pinned:
            continue
        shutil.rmtree(d, ignore_errors=True)
        gone.append(d)
    if gone:
        log.info("pruned %d old snapshot(s) of this taxonomy: %s", len(gone), ", ".join(d.name for d in gone))
    return gone


def termination_summary(report: Report, limit: int = 4096) -> str:
    """The pod's termination message (at most ``limit`` bytes), in the shape the operator reads into the Taxonomy's
    status: counts and totals always; leaves and errors as many as fit (errors first)."""
    counts = {"knowledge": 0, "freeform_skill": 0, "grounded_skill": 0}
    for leaf in report.leaves:
        counts[leaf.type] += 1
    leaves = [{"path": leaf.path, "type": leaf.type, "seed_examples": leaf.seed_examples} for leaf in report.leaves]
    errors = [{"path": e.path, "line": e.line, "message": e.message[:300]} for e in report.errors]
    summary: dict[str, object] = {
        "valid": report.valid,
        "revision": report.revision,
        "counts": counts,
        "error_count": len(report.errors),
        "warning_count": len(report.warnings),
        "errors": errors,
        "leaves": leaves,
    }
    text = json.dumps(summary, separators=(",", ":"))
    while len(text.encode()) > limit and (leaves or errors):
        if leaves:
            leaves.pop()
        else:
            errors.pop()
        text = json.dumps(summary, separators=(",", ":"))
    return text
