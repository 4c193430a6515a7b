"""Taxonomy workloads: load, validate (instructlab-schema), diff against a base, fetch documents, sync."""

from __future__ import annotations

from labrador_trainer.taxonomy.models import Issue, Leaf, Report
from labrador_trainer.taxonomy.sync import SyncOptions, sync_taxonomy
from labrador_trainer.taxonomy.validate import ValidateOptions, validate_taxonomy

__all__ = ["Issue", "Leaf", "Report", "SyncOptions", "ValidateOptions", "sync_taxonomy", "validate_taxonomy"]
