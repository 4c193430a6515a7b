"""The CustomResourceDefinitions as data, derived from the pydantic models: each kind's names, printer columns and
structural schema (``labrador-crdgen``, labrador_operator/crdgen.py, writes them to files and renders the docs).

The conversion from pydantic's JSON Schema to a structural OpenAPI v3 schema: ``$ref`` inlined, ``Optional``
unwrapped, ``title`` and ``additionalProperties: false`` dropped (unknown fields are pruned, and rejected by
strict field validation), numeric ``exclusiveMinimum``/``exclusiveMaximum`` turned into OpenAPI 3.0 booleans,
``int | str`` quantities into ``x-kubernetes-int-or-string``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
