"""Admission webhooks served by kopf: semantic validation (api/semantics.py) and defaulting (selection labels).

Enabled when the operator is given a webhook port (``--webhook-port``, env ``LABRADOR_WEBHOOK_PORT``); kopf then
manages a ValidatingWebhookConfiguration and a MutatingWebhookConfiguration named ``labrador.dev``.
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
from labrador_operator.cache import CACHE
from labrador_operator.constants import API_GROUP, API_VERSION, LABEL_DATA, LABEL_TAXONOMY

OPERATIONS = ["CREATE", "UPDATE"]


def _reject(verdict: semantics.Verdict, warnings: list[str]) -> None:
    warnings.extend(verdict.warnings)
    if verdict.errors:
        raise kopf.AdmissionError("; ".join(verdict.errors), code=422)


@kopf.on.validate(API_GROUP, API_VERSION, FT_PLURAL, id="validate-finetunejob", operations=OPERATIONS)
def validate_finetunejob(spec: kopf.Spec, namespace: str, warnings: list[str], **kw: Any) -> None:
    try:
        parsed = FineTuneJobSpec.model_validate(dict(spec))
    except ValidationError:
        return  # the schema and CEL already report what is wrong, field by field
    exists: bool | None = None
    if (ref := parsed.data.synthetic_data_job_ref) is not None:
        exists = CACHE.record("syntheticdatajobs", namespace, ref.name) is not None
    _reject(semantics.finetunejob(parsed, data_job_exists=exists), warnings)


@kopf.on.validate(API_GROUP, API_VERSION, SDG_PLURAL, id="validate-syntheticdatajob", operations=OPERATIONS)
def validate_syntheticdatajob(spec: kopf.Spec, namespace: str, warnings: list[str], **kw: Any) -> None:
    try:
        parsed = SyntheticDataJobSpec.model_validate(dict(spec))
    except ValidationError:
        return
    tax = CACHE.parent("taxonomies", namespace, parsed.taxonomy_ref.name)
    _reject(semantics.syntheticdatajob(parsed, taxonomy_exists=tax is not None), warnings)


@kopf.on.mutate(API_GROUP, API_VERSION, SDG_PLURAL, id="default-syntheticdatajob", operations=OPERATIONS)
def default_syntheticdatajob(spec: kopf.Spec, patch: kopf.Patch, labels: kopf.Labels, **_: Any) -> None:
    """Label the job with its Taxonomy, so `kubectl get sdg -l labrador.dev/taxonomy=<name>` selects by source."""
    ref = (spec.get("taxonomyRef") or {}).get("name")
    if ref and labels.get(LABEL_TAXONOMY) != ref:
        patch.setdefault("metadata", {}).setdefault("labels", {})[LABEL_TAXONOMY] = ref


@kopf.on.mutate(API_GROUP, API_VERSION, FT_PLURAL, id="default-finetunejob", operations=OPERATIONS)
def default_finetunejob(spec: kopf.Spec, patch: kopf.Patch, labels: kopf.Labels, **_: Any) -> None:
    """Label the job with its SyntheticDataJob (when it trains on one)."""
    ref = ((spec.get("data") or {}).get("syntheticDataJobRef") or {}).get("name")
    if ref and labels.get(LABEL_DATA) != ref:
        patch.setdefault("metadata", {}).setdefault("labels", {})[LABEL_DATA] = ref
