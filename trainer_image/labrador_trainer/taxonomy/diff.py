"""Leaves changed since a base ref, like ``ilab taxonomy diff``: committed, uncommitted and untracked changes."""

from __future__ import annotations

from pathlib import Path

from labrador_trainer.taxonomy.gitcmd import git


def changed_files(root: Path, base: str, *, env: dict[str, str] | None = None) -> set[str]:
    """Paths (relative to ``root``) that differ from ``base`` or are untracked; deleted files are left out."""
    changed = git(
        ["diff", "--name-only", "--relative", "--diff-filter=d", "--end-of-options", base, "--", "."], cwd=root, env=env
    )
    untracked = git(["ls-files", "--others", "--exclude-standard", "--", "."], cwd=root, env=env)
    return {line for line in (changed + untracked).splitlines() if line}
