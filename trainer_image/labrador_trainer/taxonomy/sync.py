"""``taxonomy sync``: clone at a ref, validate, fetch documents, write a snapshot with a ``taxonomy.json`` report."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from labrador_trainer.taxonomy.budget import Counter
from labrador_trainer.taxonomy.documents import DocumentFetcher
from labrador_trainer.taxonomy.gitcmd import Credentials, git, git_env
from labrador_trainer.taxonomy.models import Report
from labrador_trainer.taxonomy.validate import ValidateOptions, validate_taxonomy

REPORT_NAME = "taxonomy.json"


@dataclass
class SyncOptions:
    url: str
    ref: str
    dest: Path
    path: str = ""
    base: str | None = None
    offline: bool = False
    count: Counter | None = None
    credentials: Credentials | None = None


def sync_taxonomy(options: SyncOptions) -> Report:
    """Snapshot: ``DEST/taxonomy/`` (the tree at ``--path``), ``DEST/documents/<leaf>/``, ``DEST/taxonomy.json``."""
    dest = options.dest
    dest.mkdir(parents=True, exist_ok=True)
    with git_env(options.credentials) as env, tempfile.TemporaryDirectory(prefix="labrador-sync-") as tmp:
        clone = Path(tmp) / "repo"
        git(["clone", "--quiet", "--no-checkout", "--", options.url, str(clone)], env=env)
        git(["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", options.ref], cwd=clone, env=env)
        revision = git(["rev-parse", "HEAD"], cwd=clone, env=env).strip()
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


def termination_summary(report: Report, limit: int = 4096) -> str:
    """A JSON summary for the pod's termination message (at most ``limit`` bytes)."""
    summary = {
        "revision": report.revision,
        "valid": report.valid,
        "leaves": len(report.leaves),
        "errors": len(report.errors),
        "warnings": len(report.warnings),
        "firstErrors": [f"{e.path}:{e.line}: {e.message}"[:300] for e in report.errors[:5]],
    }
    text = json.dumps(summary)
    while len(text.encode()) > limit and summary["firstErrors"]:
        summary["firstErrors"] = summary["firstErrors"][:-1]  # type: ignore[index]
        text = json.dumps(summary)
    return text
