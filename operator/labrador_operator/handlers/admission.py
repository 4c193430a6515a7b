"""Admission webhooks served by kopf: semantic validation (api/semantics.py) and defaulting (selection labels).

Registered when the operator is given a webhook port (``--webhook-port``, env ``LABRADOR_WEBHOOK_PORT``; kopf refuses
to start with admission handlers and no server); kopf then manages a ValidatingWebhookConfiguration and a
MutatingWebhookConfiguration named ``labrador.dev``.
"""

from __future__ import annotations

from typing import Any

import kopf
from pydantic import ValidationError

from labrador_operator.api import semantics
from labrador_operator.api.finetune import PLURAL as FT_PLURAL
from labrador_operator.api.finetune import FineTuneJobSpec
from labrador_operator.api.sdg import PLURAL as SDG_PLURAL
from labrador_operator.api.sdg import SyntheticDataJobSpec
from labrador_operator.constants import API_GROUP, API_VERSION, LABEL_DATA, LABEL_TAXONOMY
from labrador_operator.controller.cache import Cache
from labrador_operator.controller.runtime import Runtime

OPERATIONS = ["CREATE", "UPDATE"]


def _reject(verdict: semantics.Verdict, warnings: list[str]) -> None:
    warnings.extend(verdict.warnings)
    if verdict.errors:
        raise kopf.AdmissionError("; ".join(verdict.errors), code=422)


def validate_finetunejob(cache: Cache, spec: kopf.Spec, namespace: str, warnings: list[str]) -> None:
    try:
        parsed = FineTuneJobSpec.model_validate(dict(spec))
    except ValidationError:
        return  # the schema and CEL already report what is wrong, field by field
    exists: bool | None = None
    if (ref := parsed.data.synthetic_data_job_ref) is not None:
        exists = cache.record("syntheticdatajobs", namespace, ref.name) is not None
    _reject(semantics.finetunejob(parsed, data_job_exists=exists), warnings)


def validate_syntheticdatajob(cache: Cache, spec: kopf.Spec, namespace: str, warnings: list[str]) -> None:
    try:
        parsed = SyntheticDataJobSpec.model_validate(dict(spec))
    except ValidationError:
        return
    tax = cache.parent("taxonomies", namespace, parsed.taxonomy_ref.name)
    _reject(semantics.syntheticdatajob(parsed, taxonomy_exists=tax is not None), warnings)


def default_syntheticdatajob(spec: kopf.Spec, patch: kopf.Patch, labels: kopf.Labels) -> None:
    """Label the job with its Taxonomy, so `kubectl get sdg -l labrador.dev/taxonomy=<name>` selects by source."""
    ref = (spec.get("taxonomyRef") or {}).get("name")
    if ref and labels.get(LABEL_TAXONOMY) != ref:
        patch.setdefault("metadata", {}).setdefault("labels", {})[LABEL_TAXONOMY] = ref


def default_finetunejob(spec: kopf.Spec, patch: kopf.Patch, labels: kopf.Labels) -> None:
    """Label the job with its SyntheticDataJob (when it trains on one)."""
    ref = ((spec.get("data") or {}).get("syntheticDataJobRef") or {}).get("name")
    if ref and labels.get(LABEL_DATA) != ref:
        patch.setdefault("metadata", {}).setdefault("labels", {})[LABEL_DATA] = ref


def register(registry: kopf.OperatorRegistry, rt: Runtime) -> None:
    """The validating and defaulting webhooks; they read the runtime's cache (no API calls in an admission
    request)."""

    @kopf.on.validate(API_GROUP, API_VERSION, FT_PLURAL, id="validate-finetunejob", operations=OPERATIONS,
                      registry=registry)  # fmt: skip
    def on_validate_finetunejob(spec: kopf.Spec, namespace: str, warnings: list[str], **_: Any) -> None:
        validate_finetunejob(rt.cache, spec, namespace, warnings)

    @kopf.on.validate(API_GROUP, API_VERSION, SDG_PLURAL, id="validate-syntheticdatajob", operations=OPERATIONS,
                      registry=registry)  # fmt: skip
    def on_validate_syntheticdatajob(spec: kopf.Spec, namespace: str, warnings: list[str], **_: Any) -> None:
        validate_syntheticdatajob(rt.cache, spec, namespace, warnings)

    @kopf.on.mutate(API_GROUP, API_VERSION, SDG_PLURAL, id="default-syntheticdatajob", operations=OPERATIONS,
                    registry=registry)  # fmt: skip
    def on_default_syntheticdatajob(spec: kopf.Spec, patch: kopf.Patch, labels: kopf.Labels, **_: Any) -> None:
        default_syntheticdatajob(spec, patch, labels)

    @kopf.on.mutate(API_GROUP, API_VERSION, FT_PLURAL, id="default-finetunejob", operations=OPERATIONS,
                    registry=registry)  # fmt: skip
    def on_default_finetunejob(spec: kopf.Spec, patch: kopf.Patch, labels: kopf.Labels, **_: Any) -> None:
        default_finetunejob(spec, patch, labels)
