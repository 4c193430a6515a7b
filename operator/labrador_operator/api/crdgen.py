"""Generate the CustomResourceDefinitions from the pydantic models.

``labrador-crdgen`` (``make crds``) writes ``crds/<plural>.labrador.dev.yaml`` and the same documents as Helm
templates under ``charts/labrador/templates/crds/`` (behind ``crds.enabled`` so ``helm upgrade`` upgrades them).
``labrador-crdgen --check`` exits 1 when the files on disk differ from the models.

The conversion from pydantic's JSON Schema to a structural OpenAPI v3 schema: ``$ref`` inlined, ``Optional``
unwrapped, ``title`` and ``additionalProperties: false`` dropped (unknown fields are pruned, and rejected by
strict field validation), numeric ``exclusiveMinimum``/``exclusiveMaximum`` turned into OpenAPI 3.0 booleans,
``int | str`` quantities into ``x-kubernetes-int-or-string``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from labrador_operator.api import finetune, sdg, taxonomy
from labrador_operator.constants import API_GROUP, API_VERSION, CATEGORY


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: list[str]
    model: type[BaseModel]
    printer_columns: list[dict[str, Any]]

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{API_GROUP}"


KINDS = [
    Kind(taxonomy.KIND, taxonomy.PLURAL, taxonomy.SHORT_NAMES, taxonomy.Taxonomy, taxonomy.PRINTER_COLUMNS),
    Kind(sdg.KIND, sdg.PLURAL, sdg.SHORT_NAMES, sdg.SyntheticDataJob, sdg.PRINTER_COLUMNS),
    Kind(finetune.KIND, finetune.PLURAL, finetune.SHORT_NAMES, finetune.FineTuneJob, finetune.PRINTER_COLUMNS),
]

_KEEP = {
    "type",
    "description",
    "default",
    "enum",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "items",
    "properties",
    "required",
    "additionalProperties",
    "nullable",
    "x-kubernetes-validations",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
}


class _Converter:
    def __init__(self, root: dict[str, Any]) -> None:
        self.defs = root.get("$defs", {})

    def convert(self, node: dict[str, Any]) -> dict[str, Any]:
        node = dict(node)
        if "$ref" in node:  # siblings of $ref (description, default, validations) override the target's
            target = self.defs[node.pop("$ref").split("/")[-1]]
            merged = dict(target)
            rules = list(target.get("x-kubernetes-validations", [])) + list(node.pop("x-kubernetes-validations", []))
            merged.update(node)
            if rules:
                merged["x-kubernetes-validations"] = rules
            node = merged
        if "allOf" in node and len(node["allOf"]) == 1:
            inner = node.pop("allOf")[0]
            node = {**inner, **node}
            return self.convert(node)
        if "anyOf" in node:
            options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
            if node.get("default", 0) is None:
                node.pop("default")
            if len(options) == 1:
                inner = self.convert(options[0])
                rules = inner.get("x-kubernetes-validations", []) + node.pop("x-kubernetes-validations", [])
                node = {**inner, **node}
                if rules:
                    node["x-kubernetes-validations"] = rules
                return self.convert(node) if "$ref" in node or "anyOf" in node else self._finish(node)
            if node.get("x-kubernetes-int-or-string") or {o.get("type") for o in options} == {"integer", "string"}:
                node["x-kubernetes-int-or-string"] = True
                node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
                return self._finish(node)
            raise ValueError(f"cannot express union {options} structurally")
        if "const" in node:
            node["enum"] = [node.pop("const")]
            node.setdefault("type", "string")
        return self._finish(node)

    def _finish(self, node: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "properties":
                out[key] = {k: self.convert(v) for k, v in value.items()}
            elif key == "items":
                out[key] = self.convert(value)
            elif key == "additionalProperties":
                if isinstance(value, dict):
                    out[key] = self.convert(value)
            elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
                bound = "minimum" if key == "exclusiveMinimum" else "maximum"
                out[bound] = value
                out[key] = True
            elif key == "anyOf" or key in _KEEP or key in ("exclusiveMinimum", "exclusiveMaximum"):
                out[key] = value
        if out.get("format") == "date-time":
            out["type"] = "string"
        if "properties" in out:
            out["type"] = "object"
        if out.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
        return out


def schema_for(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation", ref_template="#/$defs/{model}")
    conv = _Converter(raw)
    root = conv.convert({k: v for k, v in raw.items() if k != "$defs"})
    props = root["properties"]
    props["status"].pop("description", None)
    schema: dict[str, Any] = {
        "type": "object",
        "description": root.get("description", ""),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "labrador.dev/v1alpha1"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": props["spec"],
            "status": props["status"],
        },
    }
    rules = root.get("x-kubernetes-validations")
    if rules:
        schema["x-kubernetes-validations"] = rules
    return schema


def crd_for(k: Kind) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": k.crd_name,
            "labels": {"app.kubernetes.io/name": "labrador", "app.kubernetes.io/part-of": "labrador"},
        },
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": k.kind,
                "listKind": f"{k.kind}List",
                "plural": k.plural,
                "singular": k.singular,
                "shortNames": k.short_names,
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": k.printer_columns,
                    "schema": {"openAPIV3Schema": schema_for(k.model)},
                }
            ],
        },
    }


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_NoAliasDumper, sort_keys=False, width=120)


HEADER = "# Generated by `make crds` from operator/labrador_operator/api/. Do not edit.\n"


def render_crd(k: Kind) -> str:
    return HEADER + _dump(crd_for(k))


def render_chart_template(k: Kind) -> str:
    """The CRD as a Helm template: rendered only with crds.enabled, kept on uninstall with crds.keep."""
    body = _dump(crd_for(k))
    if "{{" in body:
        raise ValueError(f"{k.kind}: generated CRD contains '{{{{', which Helm would try to render")
    annotations = "  annotations:\n    {{- if .Values.crds.keep }}\n    helm.sh/resource-policy: keep\n    {{- end }}\n"
    body = body.replace("metadata:\n", "metadata:\n" + annotations, 1)
    return HEADER + "{{- if .Values.crds.enabled }}\n" + body + "{{- end }}\n"


def _constraints(node: dict[str, Any]) -> str:
    parts = []
    for key, label in (
        ("minimum", "≥"),
        ("maximum", "≤"),
        ("minLength", "min length "),
        ("maxLength", "max length "),
        ("minItems", "min items "),
        ("maxItems", "max items "),
    ):
        if key in node:
            strict = node.get("exclusiveMinimum" if key == "minimum" else "exclusiveMaximum") is True
            sign = {"≥": ">", "≤": "<"}.get(label, label) if strict and key in ("minimum", "maximum") else label
            parts.append(f"{sign}{node[key]}")
    if "enum" in node:
        parts.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    if "pattern" in node:
        parts.append(f"pattern `{node['pattern']}`")
    for rule in node.get("x-kubernetes-validations", []):
        parts.append(rule["message"])
    return "; ".join(parts)


def _type(node: dict[str, Any]) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "int or string"
    if node.get("type") == "array":
        return f"[]{_type(node.get('items', {}))}"
    if node.get("type") == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map[string]{_type(node['additionalProperties'])}"
    return str(node.get("type", ""))


def _rows(node: dict[str, Any], path: str, out: list[str]) -> None:
    required = set(node.get("required", []))
    for name, child in node.get("properties", {}).items():
        p = f"{path}.{name}"
        default = f"`{json.dumps(child['default'])}`" if "default" in child and child["default"] != {} else ""
        desc = child.get("description", "").replace("|", "\\|").replace("\n", " ")
        cons = _constraints(child).replace("|", "\\|")
        out.append(f"| `{p}` | {_type(child)} | {'yes' if name in required else ''} | {default} | {desc} | {cons} |")
        inner = child.get("items", child) if child.get("type") == "array" else child
        _rows(inner, p + ("[]" if child.get("type") == "array" else ""), out)


def render_reference() -> str:
    """docs/api-reference.md: every field of every kind, from the same schema the CRDs carry."""
    lines = [
        "# API reference (labrador.dev/v1alpha1)",
        "",
        "Generated by `make crds` from `operator/labrador_operator/api/`; do not edit.",
        "",
    ]
    for k in KINDS:
        schema = schema_for(k.model)
        lines += [
            f"## {k.kind}",
            "",
            schema.get("description", ""),
            "",
            f"Short names: {', '.join(k.short_names)}; category `{CATEGORY}`.",
            "",
            "| Field | Type | Required | Default | Description | Constraints |",
            "|---|---|---|---|---|---|",
        ]
        for part in ("spec", "status"):
            rows: list[str] = []
            _rows({"properties": {part: schema["properties"][part]}}, "", rows)
            lines += [r.replace("| `.", "| `", 1) for r in rows]
        lines.append("")
    return "\n".join(lines)


def outputs(root: Path) -> dict[Path, str]:
    files: dict[Path, str] = {root / "docs" / "api-reference.md": render_reference()}
    for k in KINDS:
        files[root / "crds" / f"{k.crd_name}.yaml"] = render_crd(k)
        files[root / "charts" / "labrador" / "templates" / "crds" / f"{k.crd_name}.yaml"] = render_chart_template(k)
    return files


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="labrador-crdgen", description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: cwd)")
    p.add_argument("--check", action="store_true", help="exit 1 if the files differ from the models")
    a = p.parse_args(argv)
    drift = []
    for path, text in outputs(a.root).items():
        if a.check:
            if not path.exists() or path.read_text() != text:
                drift.append(str(path.relative_to(a.root)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if drift:
        print("CRDs drifted from the models; run `make crds`:\n  " + "\n  ".join(drift), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
