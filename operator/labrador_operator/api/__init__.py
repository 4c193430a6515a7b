"""The Labrador API (labrador.dev/v1alpha1), typed once: CRDs, validation and docs come from these models."""

from labrador_operator.api.finetune import FineTuneJob, FineTuneJobSpec, FineTuneJobStatus
from labrador_operator.api.sdg import SyntheticDataJob, SyntheticDataJobSpec, SyntheticDataJobStatus
from labrador_operator.api.taxonomy import Taxonomy, TaxonomySpec, TaxonomyStatus

__all__ = [
    "FineTuneJob",
    "FineTuneJobSpec",
    "FineTuneJobStatus",
    "SyntheticDataJob",
    "SyntheticDataJobSpec",
    "SyntheticDataJobStatus",
    "Taxonomy",
    "TaxonomySpec",
    "TaxonomyStatus",
]
