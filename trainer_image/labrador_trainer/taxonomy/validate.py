"""Validating taxonomy leaves with instructlab-schema's own parser, plus InstructLab's rules outside the schema."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from instructlab.schema.taxonomy import TaxonomyMessageFormat, TaxonomyParser
from yamllint import linter
from yamllint.config import YamlLintConfig

from labrador_trainer.taxonomy.budget import Counter, check_budgets
from labrador_trainer.taxonomy.diff import changed_files
from labrador_trainer.taxonomy.documents import DocumentFetcher
from labrador_trainer.taxonomy.load import find_candidates, line_of
from labrador_trainer.taxonomy.models import Issue, Leaf, LeafType, Report

_SCHEMA_LOGGER = logging.getLogger("instructlab.schema.taxonomy")


@dataclass
class ValidateOptions:
    """How to validate: ``base`` limits to changed leaves; ``offline`` skips documents; ``count`` is a tokenizer."""

    base: str | None = None
    offline: bool = False
    count: Counter | None = None
    documents_dest: Path | None = None
    fetcher: DocumentFetcher | None = None
    git_env: dict[str, str] | None = None
    extra_warnings: list[Issue] = field(default_factory=list)


class _Parser(TaxonomyParser):
    """InstructLab's parser with yamllint run in-process (same config, same strictness) and no yq."""

    def __init__(self) -> None:
        super().__init__(schema_version=0, yamllint_strict=True, message_format=TaxonomyMessageFormat.LOGGING)
        self.yq_available = False
        self._lint_config = YamlLintConfig(self.yamllint_config)

    def _yamllint(self, text: str, taxonomy: Any) -> None:
        for problem in linter.run(text, self._lint_config):
            message = f"{problem.desc} ({problem.rule})" if problem.rule else problem.desc
            if self.yamllint_strict or problem.level == "error":
                taxonomy.error(message, line=problem.line, col=problem.column)
            else:
                taxonomy.warning(message, line=problem.line, col=problem.column)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[tuple[str, int, str, str]] = []  # level, line, yaml_path, message

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        msg = str(record.msg)
        if msg.startswith("%s:%s:%s [%s] ") and len(args) >= 4:
            yaml_path, rest, fmt = str(args[3]), args[4:], msg[len("%s:%s:%s [%s] ") :]
        elif msg.startswith("%s:%s:%s ") and len(args) >= 3:
            yaml_path, rest, fmt = "", args[3:], msg[len("%s:%s:%s ") :]
        else:
            return  # "could not run ..." diagnostics of the library itself
        try:
            text = fmt % rest if rest else fmt
        except (TypeError, ValueError):
            text = fmt
        try:
            line = int(args[1])
        except (TypeError, ValueError):
            line = 1
        self.records.append((record.levelname, line, yaml_path, text))


def schema_check(root: Path, rel: str, parser: TaxonomyParser | None = None) -> tuple[list[Issue], list[Issue]]:
    """instructlab-schema's verdict on one file as (errors, warnings) with lines from YAML node marks."""
    parser = parser or _Parser()
    path = root / rel
    text = path.read_text(encoding="utf-8")
    capture = _Capture()
    _SCHEMA_LOGGER.addHandler(capture)
    old_propagate = _SCHEMA_LOGGER.propagate
    _SCHEMA_LOGGER.propagate = False
    errors: list[Issue] = []
    warnings: list[Issue] = []
    try:
        parser.parse(path)
    except Exception as exc:  # the library wraps YAML syntax errors (and anything else) in TaxonomyReadingException
        cause = exc.__cause__ or exc
        mark = getattr(cause, "problem_mark", None) or getattr(cause, "context_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(cause, "problem", None) or str(cause)
        errors.append(Issue(rel, line, f"cannot parse YAML: {problem}"))
    finally:
        _SCHEMA_LOGGER.removeHandler(capture)
        _SCHEMA_LOGGER.propagate = old_propagate
    for level, line, yaml_path, message in capture.records:
        if yaml_path:
            line = line_of(text, yaml_path, key=True)
        elif "schema" in message or "version" in message.lower():
            line = line_of(text, ".version", key=True)  # unknown or deprecated schema version
        elif message == "The file is empty":
            line = 0
        issue = Issue(rel, line, f"[{yaml_path}] {message}" if yaml_path else message)
        (errors if level == "ERROR" else warnings).append(issue)
    return errors, warnings


def _leaf_type(rel: str, contents: Mapping[str, Any]) -> LeafType:
    if rel.startswith("knowledge/"):
        return "knowledge"
    examples = contents.get("seed_examples")
    if isinstance(examples, list) and any(isinstance(e, Mapping) and e.get("context") for e in examples):
        return "grounded_skill"
    return "freeform_skill"


def _load(path: Path) -> tuple[str, Mapping[str, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        contents = yaml.safe_load(text)
    except yaml.YAMLError:
        contents = None
    return text, contents if isinstance(contents, Mapping) else {}


def validate_leaf(root: Path, rel: str, options: ValidateOptions, parser: TaxonomyParser) -> tuple[Leaf, Report]:
    """One leaf: schema + lint, then documents (knowledge) and token budgets when the schema is satisfied."""
    part = Report()
    errors, warnings = schema_check(root, rel, parser)
    part.errors += errors
    part.warnings += warnings
    text, contents = _load(root / rel)
    examples = contents.get("seed_examples")
    leaf = Leaf(rel, _leaf_type(rel, contents), len(examples) if isinstance(examples, list) else 0)
    document = contents.get("document")
    if not errors and leaf.type == "knowledge" and isinstance(document, Mapping):
        if options.offline:
            part.warnings.append(Issue(rel, line_of(text, ".document", key=True), "offline: documents not fetched"))
        elif options.fetcher is not None:
            dest = options.documents_dest / Path(rel).parent if options.documents_dest else None
            fetched = options.fetcher.fetch(document, dest)
            leaf.documents, leaf.commit = fetched.files, fetched.commit
            if fetched.error:
                part.errors.append(Issue(rel, line_of(text, "." + fetched.error_key, key=True), fetched.error))
    if not errors and options.count is not None:
        for yaml_path, message in check_budgets(contents, options.count):
            part.errors.append(Issue(rel, line_of(text, yaml_path, key=True), f"[{yaml_path}] {message}"))
    leaf.valid = not part.errors
    return leaf, part


def validate_taxonomy(root: Path, options: ValidateOptions | None = None) -> Report:
    """Validate every leaf under ``root`` (or only those changed since ``options.base``)."""
    options = options or ValidateOptions()
    root = root.resolve()
    report = Report(warnings=list(options.extra_warnings))
    only = changed_files(root, options.base, env=options.git_env) if options.base else None
    candidates = find_candidates(root, only)
    report.warnings += candidates.warnings
    if options.count is None:
        report.warnings.append(Issue("", 0, "no tokenizer given: token budgets not checked"))
    parser = _Parser()
    with tempfile.TemporaryDirectory(prefix="labrador-docs-") as cache:
        if options.fetcher is None and not options.offline:
            options = _with_fetcher(options, DocumentFetcher(Path(cache), env=options.git_env))
        for rel in candidates.files:
            leaf, part = validate_leaf(root, rel, options, parser)
            report.leaves.append(leaf)
            report.errors += part.errors
            report.warnings += part.warnings
    return report


def _with_fetcher(options: ValidateOptions, fetcher: DocumentFetcher) -> ValidateOptions:
    return replace(options, fetcher=fetcher)
