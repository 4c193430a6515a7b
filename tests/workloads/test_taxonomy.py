"""Taxonomy validation and sync: verdicts as instructlab-schema's, errors with file:line, diff, snapshot, CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from instructlab.schema.taxonomy import TaxonomyMessageFormat, TaxonomyParser

from labrador_trainer.taxonomy import SyncOptions, ValidateOptions, sync_taxonomy, validate_taxonomy
from labrador_trainer.taxonomy.gitcmd import Credentials
from labrador_trainer.taxonomy.models import Report
from labrador_trainer.taxonomy.sync import termination_summary
from labrador_trainer.taxonomy.validate import schema_check
from tests.conftest import FIXTURES, ROOT
from tests.workloads.conftest import TAXONOMY, TaxonomyRepo, commit_all, run_git

K = "knowledge/science/animals/birds/black_capped_chickadee/qna.yaml"
K2 = "knowledge/arts/music/fandom/swifties/qna.yaml"
G = "compositional_skills/grounded/linguistics/inclusion/qna.yaml"
F = "compositional_skills/linguistics/synonyms/qna.yaml"
LEAVES = [K, K2, G, F, "compositional_skills/grounded/linguistics/writing/rewriting/qna.yaml"]
LONG = " ".join(["chickadee"] * 700)


def library_errors(path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """instructlab-schema's own verdict (InstructLab's settings: version from the file, strict yamllint)."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    parser = TaxonomyParser(schema_version=0, yamllint_strict=True, message_format=TaxonomyMessageFormat.STANDARD)
    parser.yq_available = False
    try:
        return parser.parse(path).errors
    except Exception:
        return 1  # the library raises on unparsable YAML


@pytest.mark.parametrize("rel", sorted(p.relative_to(TAXONOMY).as_posix() for p in TAXONOMY.rglob("qna.yaml")))
def test_fixture_verdicts_match_instructlab_schema(rel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    errors, _ = schema_check(TAXONOMY, rel)
    assert bool(errors) == bool(library_errors(TAXONOMY / rel, monkeypatch)), errors


def test_fixture_taxonomy_is_valid(taxonomy_repo: TaxonomyRepo) -> None:
    report = validate_taxonomy(taxonomy_repo.root)
    assert report.valid, report.errors
    by_path = {leaf.path: leaf for leaf in report.leaves}
    assert sorted(by_path) == sorted(LEAVES)  # foundational_skills/ is ignored
    assert by_path[K].type == "knowledge" and by_path[K].documents == ["chickadee.md"]
    assert by_path[K].commit == taxonomy_repo.docs.commit
    assert by_path[G].type == "grounded_skill" and by_path[F].type == "freeform_skill"
    assert by_path[F].seed_examples == 6


# --- malformed variants -------------------------------------------------------------------------------------------


def sub(old: str, new: str, count: int = 1) -> Callable[[str], str]:
    def apply(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, count)

    return apply


def via_yaml(fn: Callable[[dict[str, Any]], None]) -> Callable[[str], str]:
    def apply(text: str) -> str:
        data = yaml.safe_load(text)
        fn(data)
        return yaml.safe_dump(data, sort_keys=False, width=10_000, allow_unicode=True)

    return apply


def _drop_examples(n: int) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.__setitem__("seed_examples", d["seed_examples"][:n])


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(d: dict[str, Any]) -> None:
        node: Any = d
        for key in path[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return apply


_DELETE = object()


@dataclass(frozen=True)
class Case:
    id: str
    leaf: str
    mutate: Callable[[str], str]
    message: str  # regex searched in the error message (case-insensitive)
    line: str | int | None  # int: exact line; str: first line of the mutated file containing it; None: line >= 1
    schema: bool = True  # instructlab-schema's own parser also rejects it
    tokenizer: bool = False


CASES = [
    Case("yaml-syntax-flow", K, sub("domain: animals", "domain: [animals"), "cannot parse YAML", None),
    Case("yaml-syntax-quote", F, sub("question: List a synonym", "question: 'List a synonym"), "parse", None),
    Case("yaml-bad-indent", K, sub("  commit:", "   commit:"), "parse|indentation", None),
    Case("yaml-tab", K, sub("domain: animals", "domain:\tanimals\n\tx: 1"), "parse", None),
    Case("version-wrong-type", K, sub("version: 3", "version: three"), "not supported|not of type", "version:"),
    Case("version-string", F, sub("version: 3", "version: '3'"), "not of type", "version:"),
    Case("version-unknown", K, sub("version: 3", "version: 99"), "schema", "version:"),
    Case("version-deprecated-v1", K, sub("version: 3", "version: 1"), "deprecated|version", "version:"),
    Case("version-unknown-skill", F, sub("version: 3", "version: 7"), "schema", "version:"),
    Case("knowledge-too-few-examples", K, via_yaml(_drop_examples(4)), "at least 5 items", "seed_examples:"),
    Case("skill-too-few-examples", F, via_yaml(_drop_examples(4)), "at least 5 items", "seed_examples:"),
    Case("grounded-too-few-examples", G, via_yaml(_drop_examples(2)), "at least 5 items", "seed_examples:"),
    Case(
        "knowledge-too-few-qa",
        K,
        via_yaml(_set(["seed_examples", 0, "questions_and_answers"], [{"question": "q?", "answer": "a"}])),
        "at least 3 items",
        "questions_and_answers:",
    ),
    Case("missing-domain", K, sub("domain: animals\n", ""), "'domain' is a required property", 1),
    Case("missing-created-by", F, sub("created_by: yanpliu\n", ""), "'created_by' is a required", 1),
    Case("missing-task-description", G, via_yaml(_set(["task_description"], _DELETE)), "task_description", 1),
    Case("missing-document", K, via_yaml(_set(["document"], _DELETE)), "'document' is a required", 1),
    Case(
        "missing-document-repo", K, via_yaml(_set(["document", "repo"], _DELETE)), "'repo' is a required", "document:"
    ),
    Case("missing-question", F, via_yaml(_set(["seed_examples", 2, "question"], _DELETE)), "'question'", None),
    Case("answer-wrong-type", F, via_yaml(_set(["seed_examples", 1, "answer"], [1, 2])), "not of type", None),
    Case("context-wrong-type", G, via_yaml(_set(["seed_examples", 0, "context"], 123)), "not of type", "context:"),
    Case("domain-wrong-type", K, sub("domain: animals", "domain: 42"), "not of type", "domain:"),
    Case(
        "unknown-top-level-key",
        F,
        sub("created_by: yanpliu", "created_by: yanpliu\nflavour: x"),
        "additional|unevaluated",
        1,
    ),
    Case(
        "patterns-empty", K, via_yaml(_set(["document", "patterns"], [])), "at least 1 item|should be non-empty", None
    ),
    Case("commit-not-hex", K, lambda t: re.sub(r"commit: \w+", "commit: not-a-sha", t), "not found", "commit:", False),
    Case(
        "commit-unknown",
        K,
        lambda t: re.sub(r"commit: \w+", "commit: " + "deadbeef" * 5, t),
        "not found",
        "commit:",
        False,
    ),
    Case("patterns-match-nothing", K, sub("- chickadee.md", "- nothing*.md"), "match no .md", "patterns:", False),
    Case("patterns-not-markdown", K, sub("- chickadee.md", "- LICENSE"), "match no .md or .pdf", "patterns:", False),
    Case(
        "repo-unreachable",
        K,
        lambda t: re.sub(r"repo: .*", "repo: file:///nonexistent/docs.git", t),
        "cannot fetch",
        "repo:",
        False,
    ),
    Case("duplicate-key", K, sub("domain: animals\n", "domain: animals\ndomain: birds\n"), "duplication", 4),
    Case("trailing-space", K, sub("domain: animals\n", "domain: animals   \n"), "trailing spaces", 3),
    Case("top-level-list", F, lambda t: "- a\n- b\n", "top-level element", None),
    Case(
        "context-over-budget",
        K,
        sub("      conserve energy.\n", f"      conserve energy. {LONG}\n"),
        "context has",
        "- context:",
        False,
        True,
    ),
    Case(
        "skill-example-over-budget",
        F,
        via_yaml(_set(["seed_examples", 0, "answer"], LONG)),
        "over 750",
        None,
        False,
        True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_variant(
    case: Case, taxonomy_repo: TaxonomyRepo, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    path = taxonomy_repo.root / case.leaf
    text = case.mutate(path.read_text())
    path.write_text(text)
    count = request.getfixturevalue("token_counter") if case.tokenizer else None
    report = validate_taxonomy(taxonomy_repo.root, ValidateOptions(count=count))
    assert not report.valid
    errors = [e for e in report.errors if e.path == case.leaf]
    assert errors and len(errors) == len(report.errors), report.errors  # only the mutated leaf is invalid
    hits = [e for e in errors if re.search(case.message, e.message, re.IGNORECASE)]
    assert hits, errors
    if isinstance(case.line, int):
        assert any(e.line == case.line for e in hits), hits
    elif isinstance(case.line, str):
        expected = next(i for i, line in enumerate(text.splitlines(), 1) if case.line in line)
        assert any(e.line == expected for e in hits), (expected, hits)
    elif case.id != "top-level-list":
        assert all(e.line >= 1 for e in hits), hits
    assert {leaf.path for leaf in report.leaves if not leaf.valid} == {case.leaf}
    if case.schema:
        assert library_errors(path, monkeypatch) > 0


def test_qna_yml_is_ignored_with_a_warning(taxonomy_repo: TaxonomyRepo) -> None:
    bad = taxonomy_repo.root / "compositional_skills/misnamed/qna.yml"
    bad.parent.mkdir()
    bad.write_text("not: [valid\n")
    report = validate_taxonomy(taxonomy_repo.root, ValidateOptions(offline=True))
    assert report.valid
    assert any(w.path == "compositional_skills/misnamed/qna.yml" and "qna.yaml" in w.message for w in report.warnings)
    assert "compositional_skills/misnamed/qna.yml" not in {leaf.path for leaf in report.leaves}


def test_offline_warns_instead_of_fetching(taxonomy_repo: TaxonomyRepo) -> None:
    path = taxonomy_repo.root / K
    path.write_text(re.sub(r"repo: .*", "repo: file:///nonexistent/docs.git", path.read_text()))
    report = validate_taxonomy(taxonomy_repo.root, ValidateOptions(offline=True))
    assert report.valid, report.errors
    offline = [w for w in report.warnings if "offline" in w.message]
    assert {w.path for w in offline} == {K, K2} and all(w.line >= 1 for w in offline)


def test_budgets_pass_on_fixtures(taxonomy_repo: TaxonomyRepo, token_counter: Callable[[str], int]) -> None:
    report = validate_taxonomy(taxonomy_repo.root, ValidateOptions(offline=True, count=token_counter))
    assert report.valid, report.errors
    assert not any("tokenizer" in w.message for w in report.warnings)


def test_base_lists_only_changed_leaves(taxonomy_repo: TaxonomyRepo) -> None:
    root = taxonomy_repo.root
    (root / G).write_text((root / G).read_text().replace("more inclusive", "more inclusive, modern"))
    commit_all(root, "change grounded skill")
    (root / K).write_text((root / K).read_text().replace("domain: animals", "domain: birds"))  # uncommitted
    new = root / "compositional_skills/linguistics/antonyms/qna.yaml"  # untracked
    new.parent.mkdir()
    new.write_text((root / F).read_text())
    (root / "foundational_skills/reasoning/theory_of_mind/qna.yaml").write_text("changed: but ignored\n")
    new_rel = new.relative_to(root).as_posix()

    head = validate_taxonomy(root, ValidateOptions(base="HEAD", offline=True))
    assert sorted(leaf.path for leaf in head.leaves) == sorted([K, new_rel])
    before = validate_taxonomy(root, ValidateOptions(base="HEAD~1", offline=True))
    assert sorted(leaf.path for leaf in before.leaves) == sorted([K, G, new_rel])
    assert before.valid, before.errors


def test_sync_writes_snapshot(taxonomy_repo: TaxonomyRepo, tmp_path: Path) -> None:
    dest = tmp_path / "snapshot"
    report = sync_taxonomy(SyncOptions(url=taxonomy_repo.url, ref="main", dest=dest))
    assert report.valid, report.errors
    assert report.revision == taxonomy_repo.commit
    saved = json.loads((dest / "taxonomy.json").read_text())
    assert saved["revision"] == taxonomy_repo.commit and saved["valid"] is True and len(saved["leaves"]) == 5
    doc = dest / "documents" / Path(K).parent / "chickadee.md"
    assert doc.read_text() == (TAXONOMY.parent / "knowledge-docs" / "chickadee.md").read_text()
    assert (dest / "taxonomy" / K).is_file() and not (dest / "taxonomy" / ".git").exists()
    summary = termination_summary(report)
    assert len(summary.encode()) <= 4096 and json.loads(summary)["revision"] == taxonomy_repo.commit


def test_sync_offline_and_unreachable_documents(taxonomy_repo: TaxonomyRepo, tmp_path: Path) -> None:
    root = taxonomy_repo.root
    (root / K).write_text(re.sub(r"repo: .*", "repo: file:///nonexistent/docs.git", (root / K).read_text()))
    sha = commit_all(root, "unreachable documents")
    offline = sync_taxonomy(SyncOptions(url=taxonomy_repo.url, ref=sha, dest=tmp_path / "a", offline=True))
    assert offline.valid and any("offline" in w.message for w in offline.warnings)
    online = sync_taxonomy(SyncOptions(url=taxonomy_repo.url, ref=sha, dest=tmp_path / "b"))
    assert [(e.path, "cannot fetch" in e.message) for e in online.errors] == [(K, True)]
    assert {leaf.path for leaf in online.leaves if not leaf.valid} == {K}
    assert (tmp_path / "b" / "documents" / Path(K2).parent / "swifties.md").is_file()


def test_sync_subdir_and_base(taxonomy_repo: TaxonomyRepo, tmp_path: Path) -> None:
    mono = tmp_path / "mono"
    shutil.copytree(taxonomy_repo.root, mono / "taxonomy", ignore=shutil.ignore_patterns(".git"))
    (mono / "README.md").write_text("not a taxonomy\n")
    run_git(mono, "init", "-q", "-b", "main")
    first = commit_all(mono, "taxonomy in a subfolder")
    (mono / "taxonomy" / F).write_text((mono / "taxonomy" / F).read_text().replace("attend", "attend (verb)"))
    second = commit_all(mono, "change one skill")

    opts = SyncOptions(url=mono.as_uri(), ref="main", dest=tmp_path / "s", path="taxonomy", base=first, offline=True)
    report = sync_taxonomy(opts)
    assert report.revision == second and report.valid, report.errors
    assert [leaf.path for leaf in report.leaves] == [F]
    assert (tmp_path / "s" / "taxonomy" / K).is_file() and not (tmp_path / "s" / "taxonomy" / "README.md").exists()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "trainer_image"), str(ROOT), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "labrador_trainer.cli", "taxonomy", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_cli_validate_json_exit_codes(taxonomy_repo: TaxonomyRepo) -> None:
    ok = _cli("validate", str(taxonomy_repo.root), "--format", "json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["valid"] is True
    path = taxonomy_repo.root / F
    path.write_text(path.read_text().replace("version: 3", "version: three"))
    bad = _cli("validate", str(taxonomy_repo.root), "--format", "json", "--offline")
    assert bad.returncode == 1, bad.stderr
    out = json.loads(bad.stdout)
    assert out["valid"] is False and {"path", "line", "message"} <= set(out["errors"][0])
    assert out["errors"][0]["path"] == F and out["errors"][0]["line"] == 1
    assert {leaf["type"] for leaf in out["leaves"]} == {"knowledge", "freeform_skill", "grounded_skill"}


def test_cli_sync_termination_log(taxonomy_repo: TaxonomyRepo, tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    res = _cli(
        "sync",
        "--url",
        taxonomy_repo.url,
        "--ref",
        "main",
        "--dest",
        str(tmp_path / "d"),
        "--termination-log",
        str(log),
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads(log.read_text())
    assert summary["revision"] == taxonomy_repo.commit and summary["error_count"] == 0 and summary["errors"] == []
    assert len(summary["leaves"]) == sum(summary["counts"].values()) == 5


def test_credentials_load_from_files_and_never_print(tmp_path: Path) -> None:
    (tmp_path / "username").write_text("alice\n")
    (tmp_path / "password").write_text("s3cret\n")
    creds = Credentials.load(tmp_path)
    assert creds == Credentials("alice", "s3cret") and "s3cret" not in repr(creds)
    (tmp_path / "url").write_text("https://git.example.com\n")
    assert Credentials.load(tmp_path) == Credentials("alice", "s3cret", "https://git.example.com")


def test_report_json_shape() -> None:
    assert Report().to_dict() == {"valid": True, "leaves": [], "errors": [], "warnings": []}


def test_sync_from_a_directory_uses_a_content_revision(tmp_path: Path) -> None:
    """configMap and volume sources: the operator mounts the files and syncs with --source-dir."""
    src = tmp_path / "src"
    leaf = FIXTURES / "taxonomy" / "compositional_skills" / "grounded" / "linguistics" / "inclusion"
    shutil.copytree(leaf, src / "compositional_skills" / "grounded" / "linguistics" / "inclusion")
    report = sync_taxonomy(SyncOptions(url=None, ref=None, dest=tmp_path / "dest", source_dir=src, offline=True))
    assert report.valid and report.revision and report.revision.startswith("sha256-")
    again = sync_taxonomy(SyncOptions(url=None, ref=None, dest=tmp_path / "dest2", source_dir=src, offline=True))
    assert again.revision == report.revision
    assert (tmp_path / "dest" / "taxonomy" / "compositional_skills").is_dir()


def test_refs_resolve_and_never_become_git_options(taxonomy_repo: TaxonomyRepo, tmp_path: Path) -> None:
    """A branch other than the default, a tag and a commit resolve; a ref or base that looks like an option is
    looked up as a name (``--end-of-options``) and fails as not found, running nothing."""
    from labrador_trainer.taxonomy.diff import changed_files
    from labrador_trainer.taxonomy.gitcmd import GitError

    root = taxonomy_repo.root
    run_git(root, "tag", "v1")
    run_git(root, "checkout", "-q", "-b", "feature")
    (root / F).write_text((root / F).read_text().replace("attend", "attend (verb)"))
    feature = commit_all(root, "feature work")
    run_git(root, "checkout", "-q", "main")
    for ref, want in (("feature", feature), ("v1", taxonomy_repo.commit), (feature[:12], feature)):
        report = sync_taxonomy(SyncOptions(url=taxonomy_repo.url, ref=ref, dest=tmp_path / ref, offline=True))
        assert report.revision == want, ref
    marker = tmp_path / "pwned"
    for evil in (f"--upload-pack=touch {marker}", f"--output={marker}"):
        with pytest.raises(GitError, match="not found"):
            sync_taxonomy(SyncOptions(url=taxonomy_repo.url, ref=evil, dest=tmp_path / "evil", offline=True))
        with pytest.raises(GitError):
            changed_files(root, evil)
    assert not marker.exists()


def test_an_unreachable_source_is_retried_a_wrong_one_is_not(tmp_path: Path) -> None:
    """Exit 3 (the sync Job retries with backoff) when the server cannot be reached; 2 (fails at once: the user must
    fix the spec) for a repository that does not exist; the termination message says which."""
    from labrador_trainer.cli import main as cli

    def sync(url: str) -> tuple[int, dict[str, object]]:
        term = tmp_path / "term.json"
        code = cli(["taxonomy", "sync", "--url", url, "--ref", "main", "--dest", str(tmp_path / "d"),
                    "--termination-log", str(term)])  # fmt: skip
        return code, json.loads(term.read_text())

    code, term = sync("https://127.0.0.1:1/taxonomy.git")  # nothing listens on port 1: connection refused
    assert code == 3 and term["retryable"] is True, term
    code, term = sync((tmp_path / "no-such-repo").as_uri())
    assert code == 2 and term["retryable"] is False and "does not appear to be a git repository" in str(term["error"])


def test_old_snapshots_are_pruned_but_pinned_ones_stay(taxonomy_repo: TaxonomyRepo, tmp_path: Path) -> None:
    """A refreshing Taxonomy writes a snapshot per window; `sync --keep-last 3` deletes the older ones beside the new
    one, except snapshots a running SyntheticDataJob pinned (--keep-snapshot) and anything not named like one."""
    import os

    from labrador_trainer.cli import main as cli

    root = tmp_path / "taxonomies" / "ns" / "tax"
    old = [root / f"tax-sync-g1-w{i}" for i in range(5)]
    for i, d in enumerate(old):
        d.mkdir(parents=True)
        (d / "taxonomy.json").write_text("{}")
        os.utime(d, (1_000_000 + i, 1_000_000 + i))
    (root / "notes").mkdir()
    new = root / "tax-sync-g2"
    argv = ["taxonomy", "sync", "--url", taxonomy_repo.url, "--ref", "main", "--dest", str(new), "--offline",
            "--keep-last", "3", "--keep-snapshot", str(old[0])]  # fmt: skip
    assert cli(argv) == 0
    left = sorted(d.name for d in root.iterdir())
    # the new one, the two newest older ones (w4, w3), the pinned w0, and the unrelated folder
    assert left == ["notes", "tax-sync-g1-w0", "tax-sync-g1-w3", "tax-sync-g1-w4", "tax-sync-g2"], left
