"""Types shared by the three kinds: model sources, run policy, resources, workspace, conditions.

Every model here is the single source of the CRD schema (see ``crdgen``), of validation in the operator and of the
reference docs. Field names are snake_case in Python and camelCase on the wire (``alias_generator``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from labrador_operator.constants import API_GROUP, API_VERSION

# --- helpers ------------------------------------------------------------------------------------------------------

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
# A relative path inside a volume: no leading "/", no ".." component.
REL_PATH_RULE = "!self.startsWith('/') && !self.split('/').exists(p, p == '..')"
REL_PATH_MESSAGE = "must be a relative path without '..' components"


def cel(rule: str, message: str, *, field_path: str | None = None, reason: str | None = None) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry."""
    out = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    if reason:
        out["reason"] = reason
    return out


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


IMMUTABLE = cel("self == oldSelf", "is immutable once set; create a new resource instead")


def DnsName(description: str, *, max_length: int = 63) -> Any:
    return Field(description=description, min_length=1, max_length=max_length, pattern=DNS_LABEL)


# `int | str` quantities ("4", 4, "500m", "32Gi") map to x-kubernetes-int-or-string.
Quantity = Annotated[
    int | str,
    Field(json_schema_extra={"x-kubernetes-int-or-string": True, "pattern": QUANTITY}),
]


ShortString = Annotated[str, Field(max_length=253)]
LabelValue = Annotated[str, Field(max_length=63)]


class ApiModel(BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=False,
    )

    def wire(self) -> dict[str, Any]:
        """The object as the API server stores it (camelCase, unset optionals left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class StatusModel(ApiModel):
    """Base of status models: tolerant of fields written by a newer operator."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


def object_field(factory: type[BaseModel], description: str) -> Any:
    """A nested object that defaults to ``{}`` so the API server fills in its own defaults."""
    return Field(default_factory=factory, description=description, json_schema_extra={"default": {}})


# --- references ---------------------------------------------------------------------------------------------------


class LocalObjectReference(ApiModel):
    """A reference to an object of a known kind in the same namespace."""

    name: str = Field(
        description="Name of the object, in the same namespace.",
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
    )


class SecretKeyRef(ApiModel):
    """A key of a Secret in the same namespace. Its value is passed to pods as an environment variable only."""

    name: str = Field(
        description="Name of the Secret, in the same namespace.", min_length=1, max_length=253, pattern=DNS_SUBDOMAIN
    )
    key: str = Field(description="Key inside the Secret.", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")


# --- model sources ------------------------------------------------------------------------------------------------

MODEL_URI_RULE = (
    "self.matches('^pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/.*)?$') || "
    "self.matches('^hf://[A-Za-z0-9][-A-Za-z0-9_.]*/[A-Za-z0-9][-A-Za-z0-9_.]*(@[-A-Za-z0-9_./]+)?$') || "
    "self.matches('^s3://[a-z0-9][-a-z0-9.]{1,61}[a-z0-9](/.*)?$') || "
    "self.matches('^oci://[a-z0-9][-a-z0-9.:]*(/[-a-z0-9._]+)+(:[-A-Za-z0-9_.]+|@sha256:[a-f0-9]{64})?$')"
)


class ModelSource(ApiModel):
    """Where a model comes from. It is fetched once into the workspace by an init step and reused."""

    uri: str = Field(
        description=(
            "Model location: pvc://<claim>/<path> (a directory on a PersistentVolumeClaim), "
            "hf://<org>/<name>[@<revision>] (Hugging Face Hub), s3://<bucket>/<prefix> (S3-compatible store), "
            "or oci://<registry>/<repository>[:<tag>|@sha256:<digest>] (an OCI artifact)."
        ),
        min_length=6,
        max_length=1024,
        json_schema_extra=validations(
            cel(
                MODEL_URI_RULE,
                "must be pvc://<claim>/<path>, hf://<org>/<name>[@<rev>], s3://<bucket>/<prefix> "
                "or oci://<registry>/<repo>[:<tag>]",
                reason="FieldValueInvalid",
            ),
        ),
    )
    secret_ref: LocalObjectReference | None = Field(
        default=None,
        description=(
            "Secret with credentials for the source, for the fetch step only: HF_TOKEN for hf://, "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for s3:// (as env); for oci:// a "
            "kubernetes.io/dockerconfigjson Secret, whose .dockerconfigjson alone is mounted as a read-only file: "
            "only its auths entry for the registry's host[:port] is used, sent to that host only, over https."
        ),
    )
    endpoint: str | None = Field(
        default=None,
        description="S3 endpoint URL for s3:// sources on a non-AWS store, e.g. https://minio.example:9000.",
        max_length=1024,
        pattern=r"^https?://[^\s]+$",
    )


class EndpointSource(ApiModel):
    """An OpenAI-compatible chat completions endpoint (vLLM, TGI, a hosted API)."""

    url: str = Field(
        description="Base URL of the OpenAI-compatible API, e.g. http://teacher.models.svc:8000/v1.",
        max_length=1024,
        pattern=r"^https?://[^\s]+$",
    )
    model: str = Field(description="Model name the endpoint serves.", min_length=1, max_length=253)
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the API key; passed to pods as the env var OPENAI_API_KEY via valueFrom.",
    )
    max_concurrency: int = Field(default=32, ge=1, le=1024, description="Most requests in flight at once from one pod.")


# --- run policy, resources, workspace -----------------------------------------------------------------------------


class RunPolicy(ApiModel):
    """How the operator runs the children: retries, deadlines, cleanup, suspension and queueing."""

    backoff_limit: int = Field(
        default=3,
        ge=0,
        le=100,
        description="Pod failures tolerated per child Job before it fails. Exit codes that mean a user error "
        "(bad config or data) fail the Job at once, whatever this says.",
    )
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        le=31_536_000,
        description="Wall-clock limit of each child Job in seconds; the job fails with reason DeadlineExceeded.",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        le=31_536_000,
        description="Delete the children (not this resource nor its outputs) this many seconds after it finishes.",
    )
    suspend: bool = Field(
        default=False,
        description="Suspend the run: running pods are stopped (their Jobs suspended) and resume when set to false.",
    )
    queue_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL,
        description="Kueue LocalQueue: children get the label kueue.x-k8s.io/queue-name and are created "
        "suspended for Kueue to admit.",
    )


class Toleration(ApiModel):
    """A pod toleration (core/v1 Toleration)."""

    key: str | None = Field(default=None, max_length=316, description="Taint key; empty with Exists matches all.")
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="Exists or Equal.")
    value: str | None = Field(default=None, max_length=63, description="Taint value for the Equal operator.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        default=None, ge=0, description="For NoExecute: seconds the pod stays bound after the taint appears."
    )


GPU_TOLERATION = Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")


class PodMetadata(ApiModel):
    """Extra labels and annotations for the workload pods (sidecar opt-outs, cost labels, autoscaler hints)."""

    labels: dict[str, LabelValue] | None = Field(
        default=None,
        description="Labels added to every pod; Labrador's own labels win on conflict.",
        json_schema_extra={"maxProperties": 32},
    )
    annotations: dict[str, Annotated[str, Field(max_length=4096)]] | None = Field(
        default=None, description="Annotations added to every pod.", json_schema_extra={"maxProperties": 32}
    )


class BaseResources(ApiModel):
    """Resources and placement common to every workload pod."""

    cpu: Quantity = Field(default="4", description="CPU request and limit of each pod (a Kubernetes quantity).")
    memory: Quantity = Field(default="32Gi", description="Memory request and limit of each pod (a quantity).")
    node_selector: dict[str, LabelValue] | None = Field(
        default=None,
        description="Node labels the pods must match.",
        json_schema_extra={"maxProperties": 32},
    )
    tolerations: list[Toleration] | None = Field(
        default=None,
        max_length=32,
        description="Extra tolerations. Pods that request GPUs always tolerate the nvidia.com/gpu taint.",
    )
    priority_class_name: str | None = Field(
        default=None, max_length=253, pattern=DNS_SUBDOMAIN, description="PriorityClass of the pods."
    )
    pod_metadata: PodMetadata | None = Field(default=None, description="Extra labels and annotations for the pods.")


class Resources(BaseResources):
    """Resources of each pod of a SyntheticDataJob."""

    gpus: int = Field(default=1, ge=0, le=16, description="nvidia.com/gpu requested by each pod.")


class Workspace(ApiModel):
    """The volume where taxonomies, generated data, checkpoints and models live."""

    claim_name: str = Field(
        default="labrador-workspace",
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="PersistentVolumeClaim (ReadWriteMany for multi-node jobs) mounted at /workspace in every pod.",
    )
    sub_path: str | None = Field(
        default=None,
        max_length=1024,
        description="Directory inside the claim to use as the workspace root.",
        json_schema_extra=validations(cel(REL_PATH_RULE, REL_PATH_MESSAGE)),
    )


# --- status -------------------------------------------------------------------------------------------------------


class Condition(StatusModel):
    """A metav1.Condition: the latest observation of one aspect of the resource, upserted by type."""

    type: str = Field(description="Condition type, e.g. Ready.", max_length=316)
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase machine-readable reason for the last transition.", max_length=1024)
    message: str = Field(default="", description="Human-readable details.", max_length=32768)
    last_transition_time: datetime = Field(description="When the status last changed.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was computed from."
    )


class Usage(StatusModel):
    """What the run consumed, for charge-back."""

    gpu_seconds: float = Field(default=0, ge=0, description="GPUs requested times seconds running, over all pods.")
    tokens: int = Field(default=0, ge=0, description="Tokens processed (generated or trained on).")


def kind_meta(kind: str) -> dict[str, str]:
    return {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": kind}
