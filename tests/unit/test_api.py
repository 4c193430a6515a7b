"""The typed API: defaults, cross-field rules, and the CRDs generated from it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from labrador_operator import crdgen
from labrador_operator.api import FineTuneJob, SyntheticDataJob, Taxonomy
from labrador_operator.api import schema as api_schema
from labrador_operator.api.finetune import FineTuneJobSpec, instructlab_phases
from tests.conftest import ROOT, load_example

MODELS = {"taxonomy": Taxonomy, "syntheticdatajob": SyntheticDataJob, "finetunejob": FineTuneJob}


def _body(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k in ("spec", "status")}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_examples_parse_with_the_models(name: str) -> None:
    MODELS[name].model_validate(_body(load_example(name)))


def test_crds_match_the_models() -> None:
    drift = [
        str(p.relative_to(ROOT)) for p, text in crdgen.outputs(ROOT).items() if not p.exists() or p.read_text() != text
    ]
    assert drift == [], f"run `make crds`: {drift}"


def test_default_phases_are_the_instructlab_recipe() -> None:
    spec = FineTuneJobSpec.model_validate(
        {"model": {"uri": "pvc://models/granite"}, "data": {"knowledgePath": "data/k.jsonl"}}
    )
    assert [(p.name, p.dataset, p.epochs, p.learning_rate, p.effective_batch_size) for p in spec.phases] == [
        ("knowledge", "knowledge", 7, 2e-5, 128),
        ("skills", "skills", 10, 6e-6, 3840),
    ]
    # and the CRD carries the same default, so the API server fills it in
    schema = api_schema.schema_for(FineTuneJob)["properties"]["spec"]["properties"]["phases"]
    assert schema["default"] == [p.wire() for p in instructlab_phases()]


@pytest.mark.parametrize(
    ("name", "mutate", "message"),
    [
        ("taxonomy", lambda o: o["spec"]["source"].update(volume={"claimName": "x"}), "exactly one of"),
        ("taxonomy", lambda o: o["spec"].update(source={}), "exactly one of"),
        (
            "syntheticdatajob",
            lambda o: o["spec"]["teacher"].update(endpoint={"url": "http://x/v1", "model": "m"}),
            "exactly one of spec.teacher.model or spec.teacher.endpoint",
        ),
        ("finetunejob", lambda o: o["spec"]["data"].update(knowledgePath="a.jsonl"), "syntheticDataJobRef"),
        ("finetunejob", lambda o: o["spec"]["phases"].append(dict(o["spec"]["phases"][0])), "unique"),
        ("finetunejob", lambda o: o["spec"].update(bogus=1), "Extra inputs are not permitted"),
        ("finetunejob", lambda o: o["spec"]["resources"].update(gpusPerNode=-1), "greater than or equal"),
    ],
)
def test_models_reject_what_the_crds_reject(name: str, mutate: Any, message: str) -> None:
    obj = copy.deepcopy(load_example(name))
    mutate(obj)
    with pytest.raises(ValidationError, match=message):
        MODELS[name].model_validate(_body(obj))


def _walk(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    out = [(path, schema)]
    for k, v in schema.get("properties", {}).items():
        out += _walk(v, f"{path}.{k}")
    if "items" in schema:
        out += _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        out += _walk(schema["additionalProperties"], f"{path}{{}}")
    return out


@pytest.mark.parametrize("kind", api_schema.KINDS, ids=lambda k: k.kind)
def test_schema_is_structural_and_documented(kind: api_schema.Kind) -> None:
    schema = api_schema.schema_for(kind.model)
    for path, node in _walk(schema, kind.kind):
        assert "$ref" not in node and "allOf" not in node and "oneOf" not in node, path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        else:
            assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, path
            assert "anyOf" not in node, path
        if path.count(".") >= 2 and not path.endswith("[]") and not path.endswith("{}"):
            assert node.get("description"), f"{path} has no description"
        if node.get("type") == "array" and path.startswith(f"{kind.kind}.spec"):
            assert "maxItems" in node, f"{path}: lists need maxItems (CEL cost, etcd size)"
        if node.get("type") == "string" and path.startswith(f"{kind.kind}.spec") and "enum" not in node:
            assert "maxLength" in node, f"{path}: strings need maxLength (CEL cost)"


@pytest.mark.parametrize("kind", api_schema.KINDS, ids=lambda k: k.kind)
def test_crd_shape(kind: api_schema.Kind) -> None:
    crd = api_schema.crd_for(kind)
    version = crd["spec"]["versions"][0]
    assert crd["spec"]["names"]["categories"] == ["labrador"]
    assert crd["spec"]["names"]["shortNames"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert not any("[-1" in p for p in columns.values()), "printer columns must filter conditions by type"
    assert {"Phase", "Ready", "Age"} <= set(columns)
    if kind.kind != "Taxonomy":
        assert {"Progress", "ETA"} <= set(columns)


def test_chart_templates_wrap_crds_behind_the_value() -> None:
    for k in api_schema.KINDS:
        text = crdgen.render_chart_template(k)
        assert text.splitlines()[1] == "{{- if .Values.crds.enabled }}"
        assert "helm.sh/resource-policy: keep" in text
