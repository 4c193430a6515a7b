"""Taxonomy: a tree of InstructLab qna.yaml files from git, a ConfigMap or a volume, validated by a sync Job."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from labrador_operator.api.common import (
    DNS_SUBDOMAIN,
    REL_PATH_MESSAGE,
    REL_PATH_RULE,
    ApiModel,
    Condition,
    LocalObjectReference,
    PodMetadata,
    StatusModel,
    Workspace,
    cel,
    object_field,
    validations,
)

KIND = "Taxonomy"
PLURAL = "taxonomies"
SHORT_NAMES = ["tax"]


class Phase(StrEnum):
    PENDING = "Pending"
    SYNCING = "Syncing"
    READY = "Ready"
    INVALID = "Invalid"
    FAILED = "Failed"


class ConditionType(StrEnum):
    READY = "Ready"  # a validated snapshot is available to SyntheticDataJobs
    VALID = "Valid"  # the last sync found no errors in the taxonomy


class Reason(StrEnum):
    SYNCING = "Syncing"
    SYNCED = "Synced"
    VALIDATION_FAILED = "ValidationFailed"
    SOURCE_UNREACHABLE = "SourceUnreachable"
    SYNC_FAILED = "SyncFailed"


LeafType = Literal["knowledge", "freeform_skill", "grounded_skill"]

GIT_URL_RULE = (
    "self.matches('^(https?|ssh|git|file)://[^\\\\s]+$') || self.matches('^[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+:[^\\\\s]+$')"
)
#: no credentials in the URL (they would sit in the Job's argv and could surface in git's error text → status →
#: Events); an ssh login name without a password (ssh://git@host/…, git@host:…) is not a secret
GIT_URL_NO_USERINFO = "!self.matches('^(https?|git|file)://[^/]*@') && !self.matches('^ssh://[^/@]*:[^/@]*@')"
GIT_URL_NO_USERINFO_MESSAGE = (
    "must not carry credentials (user:token@host): put them in a Secret named by secretRef (keys username, password)"
)
#: a git ref: no whitespace or the characters git forbids, and no leading '-' (git would read it as an option)
GIT_REF_PATTERN = r"^[^-\s~^:?*\[\\][^\s~^:?*\[\\]*$"
NO_LEADING_DASH = cel("!self.startsWith('-')", "must not start with '-' (git would read it as an option)")


class GitSource(ApiModel):
    """A git repository holding the taxonomy."""

    url: str = Field(
        description="Repository URL: https://, ssh://, git://, file:// or scp-like git@host:org/repo.git.",
        min_length=1,
        max_length=2048,
        json_schema_extra=validations(
            cel(GIT_URL_RULE, "must be an https://, ssh://, git://, file:// or git@host:path repository URL"),
            cel(GIT_URL_NO_USERINFO, GIT_URL_NO_USERINFO_MESSAGE),
        ),
    )
    ref: str = Field(
        default="main",
        min_length=1,
        max_length=255,
        pattern=GIT_REF_PATTERN,
        description="Branch, tag or commit to check out. Its resolved commit is reported as status.revision.",
        json_schema_extra=validations(NO_LEADING_DASH),
    )
    path: str | None = Field(
        default=None,
        max_length=1024,
        description="Directory of the taxonomy inside the repository (default: the repository root).",
        json_schema_extra=validations(cel(REL_PATH_RULE, REL_PATH_MESSAGE)),
    )
    secret_ref: LocalObjectReference | None = Field(
        default=None,
        description="Secret with keys username and password for an https:// repository, sent only to that "
        "repository's host (never over http://, never to the hosts of document repositories); or ssh-privatekey and "
        "known_hosts (required: strict host key checking, no trust on first use) for ssh:// and git@host: URLs. "
        "Mounted into the sync pod as files, never put in arguments, status or logs.",
    )


class ConfigMapItem(ApiModel):
    """One file of a ConfigMap-sourced taxonomy."""

    key: str = Field(
        description="Key of the ConfigMap entry.", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$"
    )
    path: str = Field(
        description="Path of the file inside the taxonomy, e.g. compositional_skills/writing/poems/qna.yaml.",
        min_length=1,
        max_length=1024,
        json_schema_extra=validations(cel(REL_PATH_RULE, REL_PATH_MESSAGE)),
    )


class ConfigMapSource(ApiModel):
    """A small taxonomy stored in a ConfigMap (ConfigMap keys cannot hold '/', so items map keys to paths)."""

    name: str = Field(
        description="ConfigMap name, in the same namespace.", min_length=1, max_length=253, pattern=DNS_SUBDOMAIN
    )
    items: list[ConfigMapItem] = Field(
        description="Which keys become which files of the taxonomy.",
        min_length=1,
        max_length=256,
        # a list-map keyed by path: the API server rejects duplicate paths ("Duplicate value") at no CEL cost
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["path"]},
    )


class VolumeSource(ApiModel):
    """A taxonomy already present on a PersistentVolumeClaim."""

    claim_name: str = Field(
        description="PersistentVolumeClaim name, in the same namespace.",
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
    )
    sub_path: str | None = Field(
        default=None,
        max_length=1024,
        description="Directory of the taxonomy inside the claim.",
        json_schema_extra=validations(cel(REL_PATH_RULE, REL_PATH_MESSAGE)),
    )


class TaxonomySource(ApiModel):
    """Exactly one of git, configMap or volume."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "[has(self.git), has(self.configMap), has(self.volume)].filter(x, x).size() == 1",
                "exactly one of spec.source.git, spec.source.configMap or spec.source.volume must be set",
                reason="FieldValueInvalid",
            ),
        )
    }

    git: GitSource | None = Field(default=None, description="Sync from a git repository.")
    config_map: ConfigMapSource | None = Field(default=None, description="Read from a ConfigMap.")
    volume: VolumeSource | None = Field(default=None, description="Read from a PersistentVolumeClaim.")

    @model_validator(mode="after")
    def _exactly_one(self) -> TaxonomySource:
        if sum(x is not None for x in (self.git, self.config_map, self.volume)) != 1:
            raise ValueError("exactly one of spec.source.git, spec.source.configMap or spec.source.volume must be set")
        return self


class TaxonomySpec(ApiModel):
    """What taxonomy to sync and validate."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel("!has(self.base) || has(self.source.git)", "spec.base needs a git source", field_path=".base"),
            cel(
                "!has(self.refreshInterval) || has(self.source.git)",
                "spec.refreshInterval needs a git source",
                field_path=".refreshInterval",
            ),
        )
    }

    source: TaxonomySource = Field(
        description="Where the qna.yaml tree comes from: exactly one of git, configMap or volume."
    )
    base: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        pattern=GIT_REF_PATTERN,
        description="Git ref to diff against: only leaves changed or added since base are used for generation "
        "(like `ilab taxonomy diff`). Empty: every leaf.",
        json_schema_extra=validations(NO_LEADING_DASH),
    )
    documents_secret_ref: LocalObjectReference | None = Field(
        default=None,
        description="Secret with keys username, password and optional url (https://host[:port], default the "
        "taxonomy's host) for knowledge document repositories on that host; no other host ever gets them.",
    )
    refresh_interval: str | None = Field(
        default=None,
        max_length=32,
        pattern=r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$",
        description="Re-sync period for git sources, e.g. 10m or 1h30m; status.revision moves when the ref does.",
        json_schema_extra=validations(cel("self != ''", "must be a duration such as 30s, 10m or 1h")),
    )
    workspace: Workspace = object_field(Workspace, "Volume where the validated snapshot is written.")
    pod_metadata: PodMetadata | None = Field(default=None, description="Extra labels and annotations for the sync pod.")


class Leaf(StatusModel):
    """One qna.yaml of the taxonomy."""

    path: str = Field(description="Directory of the leaf inside the taxonomy.", max_length=1024)
    type: LeafType = Field(description="knowledge, freeform_skill or grounded_skill.")
    seed_examples: int = Field(default=0, ge=0, description="Number of seed examples.")


class TaxonomyError(StatusModel):
    """A validation error with its location."""

    path: str = Field(description="File inside the taxonomy.", max_length=1024)
    line: int = Field(default=0, ge=0, description="1-based line, 0 when the error concerns the whole file.")
    message: str = Field(description="What is wrong and how to fix it.", max_length=4096)


class LeafCounts(StatusModel):
    knowledge: int = Field(default=0, ge=0, description="Knowledge leaves.")
    freeform_skill: int = Field(default=0, ge=0, description="Freeform compositional skill leaves.")
    grounded_skill: int = Field(default=0, ge=0, description="Grounded (context) compositional skill leaves.")
    total: int = Field(default=0, ge=0, description="All leaves.")


class Snapshot(StatusModel):
    claim_name: str = Field(description="Claim holding the snapshot.", max_length=253)
    path: str = Field(description="Directory of the snapshot inside the claim.", max_length=1024)


class TaxonomyStatus(StatusModel):
    phase: Phase | None = Field(default=None, description="Pending, Syncing, Ready, Invalid or Failed.")
    observed_generation: int | None = Field(default=None, description="Generation the status reflects.")
    revision: str | None = Field(default=None, max_length=64, description="Resolved git commit (or content hash).")
    counts: LeafCounts | None = Field(default=None, description="Leaves by type.")
    leaves: list[Leaf] | None = Field(default=None, max_length=1000, description="Leaves (capped at 1000).")
    errors: list[TaxonomyError] | None = Field(
        default=None, max_length=100, description="Validation errors (capped at 100)."
    )
    error_count: int | None = Field(default=None, ge=0, description="All validation errors, also beyond the cap.")
    snapshot: Snapshot | None = Field(default=None, description="Where the validated snapshot lives.")
    last_sync_time: datetime | None = Field(default=None, description="When the last sync finished.")
    conditions: list[Condition] | None = Field(
        default=None,
        max_length=16,
        description="Ready and Valid conditions.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class Taxonomy(ApiModel):
    """A tree of InstructLab qna.yaml files, synced and validated exactly as InstructLab does."""

    spec: TaxonomySpec
    status: TaxonomyStatus | None = None


PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Revision", "type": "string", "jsonPath": ".status.revision", "priority": 0},
    {"name": "Leaves", "type": "integer", "jsonPath": ".status.counts.total"},
    {"name": "Errors", "type": "integer", "jsonPath": ".status.errorCount", "priority": 1},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
