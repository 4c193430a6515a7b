"""``labrador-trainer taxonomy validate|sync``: exit 0 valid, 1 invalid taxonomy, 2 a source the user must fix,
3 a source that could not be reached (retried)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from labrador_trainer.taxonomy.models import Report

log = logging.getLogger("labrador_trainer")  # the name these messages have always carried

#: `taxonomy sync` could not reach its source (network, server): the Job retries it with backoff
EXIT_TRANSIENT = 3


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tax = sub.add_parser("taxonomy", help="validate or sync an InstructLab taxonomy")
    tax.set_defaults(func=run)
    tsub = tax.add_subparsers(dest="action", required=True)
    v = tsub.add_parser("validate", help="validate a taxonomy directory")
    v.add_argument("dir", type=Path)
    s = tsub.add_parser("sync", help="clone a taxonomy at a ref, fetch documents, validate, write a snapshot")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--url", help="git repository to clone")
    src.add_argument("--source-dir", type=Path, help="a taxonomy already on disk (mounted ConfigMap or volume)")
    s.add_argument("--ref", default="main", help="branch, tag or commit (with --url)")
    s.add_argument("--path", default="", help="subdirectory of the repository holding the taxonomy")
    s.add_argument("--dest", required=True, type=Path)
    s.add_argument(
        "--credentials-dir",
        type=Path,
        help="folder with files 'username' and 'password', sent only to the taxonomy repository's https host",
    )
    s.add_argument(
        "--documents-credentials-dir",
        type=Path,
        help="credentials for the knowledge document repositories: files username, password and url (the "
        "https://host they belong to; default: the taxonomy's host)",
    )
    s.add_argument("--termination-log", type=Path, help="write a JSON summary (≤ 4 KiB) here")
    s.add_argument(
        "--keep-last",
        type=int,
        default=0,
        help="then delete older snapshots beside --dest but this many (the new one included; 0: keep all)",
    )
    s.add_argument("--keep-snapshot", type=Path, action="append", default=[],
                   help="a snapshot that must stay (pinned by a running SyntheticDataJob); repeatable")  # fmt: skip
    for p in (v, s):
        p.add_argument("--base", help="only leaves changed or added since this git ref")
        p.add_argument("--offline", action="store_true", help="do not fetch knowledge documents")
        p.add_argument("--tokenizer", help="tokenizer directory or .gguf file for token-budget checks")
        p.add_argument("--format", choices=("json", "text"), default="text")


def _print(report: Report, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(report.to_dict(), indent=2))
        return
    for e in report.errors:
        print(f"ERROR: {e.path}:{e.line}: {e.message}")
    for w in report.warnings:
        print(f"WARN: {w.path}:{w.line}: {w.message}")
    state = "valid" if report.valid else "invalid"
    print(f"{len(report.leaves)} leaves, {len(report.errors)} errors, {len(report.warnings)} warnings: {state}")


def run(args: argparse.Namespace) -> int:
    from labrador_trainer.taxonomy.budget import load_counter
    from labrador_trainer.taxonomy.gitcmd import Credentials, CredentialsError, GitError, SshCredentials
    from labrador_trainer.taxonomy.sync import SyncOptions, prune_snapshots, sync_taxonomy, termination_summary
    from labrador_trainer.taxonomy.validate import ValidateOptions, validate_taxonomy

    count = load_counter(args.tokenizer) if args.tokenizer else None
    if args.action == "validate":
        report = validate_taxonomy(args.dir, ValidateOptions(base=args.base, offline=args.offline, count=count))
    else:
        try:
            opts = SyncOptions(
                url=args.url,
                ref=args.ref,
                dest=args.dest,
                path=args.path,
                base=args.base,
                offline=args.offline,
                count=count,
                credentials=Credentials.load(args.credentials_dir) if args.credentials_dir else None,
                ssh=SshCredentials.load(args.credentials_dir),
                documents_credentials=(
                    Credentials.load(args.documents_credentials_dir) if args.documents_credentials_dir else None
                ),
                source_dir=args.source_dir,
            )
            report = sync_taxonomy(opts)
        except (GitError, FileNotFoundError, CredentialsError) as exc:
            transient = isinstance(exc, GitError) and exc.transient
            log.error("sync failed (%s): %s", "transient, retried" if transient else "the source must be fixed", exc)
            if args.termination_log:
                args.termination_log.write_text(json.dumps({"error": str(exc)[:3500], "retryable": transient}))
            # 1 is "invalid taxonomy" and 2 a source the user must fix (the Job fails at once on both); 3 is
            # retried by the Job's backoff
            return EXIT_TRANSIENT if transient else 2
        if args.termination_log:
            args.termination_log.write_text(termination_summary(report))
        prune_snapshots(args.dest, args.keep_last, args.keep_snapshot)
    _print(report, args.format)
    return 0 if report.valid else 1
