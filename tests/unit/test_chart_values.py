"""values.yaml agrees with values.schema.json, and the schema catches typos and bad values."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT

CHART = ROOT / "charts" / "labrador"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads((CHART / "values.schema.json").read_text())


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def test_default_values_are_valid(schema: dict[str, Any], values: dict[str, Any]) -> None:
    jsonschema.validate(values, schema)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("operator", "replicas"), -1),
        (("image", "pullPolicy"), "Sometimes"),
        (("operator", "watchNamespaces"), ["Not_A_Namespace"]),
        (("metrics", "port"), 70000),
        (("operatr",), {"replicas": 1}),
        (("crds", "enabled"), "yes"),
    ],
)
def test_bad_values_are_rejected(
    schema: dict[str, Any], values: dict[str, Any], path: tuple[str, ...], value: Any
) -> None:
    bad = copy.deepcopy(values)
    node = bad
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
