"""Finding taxonomy leaves and mapping YAML paths to 1-based line numbers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from labrador_trainer.taxonomy.models import Issue

TAXONOMY_FOLDERS = ("compositional_skills", "knowledge")
IGNORED_FOLDERS = ("foundational_skills",)
_PATH_TOKEN = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True)
class Candidates:
    """``qna.yaml`` files to validate and warnings about files that are skipped."""

    files: list[str]
    warnings: list[Issue]


def classify(rel: str) -> tuple[str | None, Issue | None]:
    """For a path relative to the taxonomy root: ('leaf' | None, warning | None) as InstructLab treats it."""
    parts = Path(rel).parts
    if not parts or parts[0] in IGNORED_FOLDERS or parts[0] not in TAXONOMY_FOLDERS:
        return None, None
    name = parts[-1]
    if name == "qna.yaml":
        return "leaf", None
    if name == "qna.yml":
        msg = "taxonomy files must be named 'qna.yaml', not 'qna.yml'; the file is ignored"
        return None, Issue(rel, 0, msg)
    return None, None


def find_candidates(root: Path, only: set[str] | None = None) -> Candidates:
    """All leaves under ``root`` (or those among ``only``, paths relative to root), sorted."""
    rels = sorted(only) if only is not None else sorted(p.relative_to(root).as_posix() for p in root.rglob("qna.y*ml"))
    files: list[str] = []
    warnings: list[Issue] = []
    for rel in rels:
        if ".git" in Path(rel).parts or not (root / rel).is_file():
            continue
        kind, warning = classify(rel)
        if warning is not None:
            warnings.append(warning)
        if kind == "leaf":
            files.append(rel)
    return Candidates(files, warnings)


def node_at(text: str, yaml_path: str) -> yaml.Node | None:
    """The deepest node along ``yaml_path`` (``.a[0].b`` as jsonschema's json_path without ``$``)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    for key, index in _PATH_TOKEN.findall(yaml_path):
        child: yaml.Node | None = None
        if key and isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == key:
                    child = v
        elif index and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            child = node.value[int(index)]
        if child is None:
            break
        node = child
    return node


def line_of(text: str, yaml_path: str, *, key: bool = False) -> int:
    """1-based line of the node at ``yaml_path`` (of its key when ``key``), 1 when the file has no such node."""
    if key and yaml_path.count(".") >= 1:
        parent_path, _, name = yaml_path.rpartition(".")
        parent = node_at(text, parent_path)
        if isinstance(parent, yaml.MappingNode):
            for k, _v in parent.value:
                if isinstance(k, yaml.ScalarNode) and k.value == name:
                    return k.start_mark.line + 1
    node = node_at(text, yaml_path)
    return node.start_mark.line + 1 if node is not None else 1
