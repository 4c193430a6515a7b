"""Admission webhooks served by the operator (kopf), called by the real API server over TLS (openssl certs)."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from tests.conftest import load_example
from tests.integration.conftest import Kube


def _create(kube: Kube, ns: str, obj: dict[str, Any]) -> Any:
    return kube.kubectl("create", "-n", ns, "-f", "-", input=yaml.safe_dump(obj), check=False)


def test_semantic_errors_are_rejected_with_the_field(installed: Kube, operator: Any, namespace: str) -> None:
    ft = copy.deepcopy(load_example("finetunejob"))
    ft["spec"]["data"] = {"knowledgePath": "data/k.jsonl"}  # the skills phase has no data
    p = _create(installed, namespace, ft)
    assert p.returncode != 0
    assert 'admission webhook "validate-finetunejob.labrador.dev' in p.stderr or "denied the request" in p.stderr
    assert "spec.phases[1].dataset" in p.stderr and "spec.data.skillsPath is not set" in p.stderr

    ft = copy.deepcopy(load_example("finetunejob"))
    ft["spec"]["phases"][0]["effectiveBatchSize"] = 8  # 2 nodes x 8 GPUs = 16 processes
    p = _create(installed, namespace, ft)
    assert p.returncode != 0 and "spec.phases[0].effectiveBatchSize" in p.stderr

    sdg = copy.deepcopy(load_example("syntheticdatajob"))
    sdg["spec"]["resources"]["gpus"] = 6  # tensorParallelSize 4
    p = _create(installed, namespace, sdg)
    assert p.returncode != 0 and "spec.resources.gpus: 6 is not a multiple" in p.stderr


def test_missing_references_warn_and_defaults_label(installed: Kube, operator: Any, namespace: str) -> None:
    sdg = copy.deepcopy(load_example("syntheticdatajob"))
    p = _create(installed, namespace, sdg)
    assert p.returncode == 0, p.stderr
    assert "Warning: spec.taxonomyRef: Taxonomy 'company-taxonomy' does not exist yet" in p.stderr
    labels = installed.get("sdg", sdg["metadata"]["name"], namespace)["metadata"]["labels"]
    assert labels["labrador.dev/taxonomy"] == "company-taxonomy"
    ft = copy.deepcopy(load_example("finetunejob"))
    p = _create(installed, namespace, ft)
    assert p.returncode == 0, p.stderr
    assert "Warning" not in p.stderr  # its SyntheticDataJob exists now
    labels = installed.get("ftj", ft["metadata"]["name"], namespace)["metadata"]["labels"]
    assert labels["labrador.dev/synthetic-data-job"] == "company-data"
    sel = installed.kubectl(
        "get", "ftj", "-n", namespace, "-l", "labrador.dev/synthetic-data-job=company-data", "-o", "name"
    ).stdout
    assert sel.strip() == "finetunejob.labrador.dev/company-model"
