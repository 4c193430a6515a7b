"""Names shared by the API, the builders and the handlers: group, labels, annotations, condition types."""

from __future__ import annotations

API_GROUP = "labrador.dev"
API_VERSION = "v1alpha1"
CATEGORY = "labrador"

# Labels on every child.
LABEL_KIND = f"{API_GROUP}/kind"
LABEL_NAME = f"{API_GROUP}/name"
LABEL_PHASE = f"{API_GROUP}/phase"
#: on a multi-node phase's pods: which attempt of the phase (a restart as a group is the next)
LABEL_ATTEMPT = f"{API_GROUP}/attempt"
# Selection labels the defaulting webhook puts on the user's resources.
LABEL_TAXONOMY = f"{API_GROUP}/taxonomy"
LABEL_DATA = f"{API_GROUP}/synthetic-data-job"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "labrador-operator"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"

# kopf bookkeeping lives under our own prefix.
FINALIZER = f"{API_GROUP}/finalizer"
ANNOTATION_PREFIX = API_GROUP
ANNOTATION_OWNER = f"{API_GROUP}/owner-name"
#: on a serving Deployment: the hash of the spec it was built from (a changed spec.serve patches it)
ANNOTATION_SERVE_HASH = f"{API_GROUP}/serve-spec-hash"

# Resource names.
WORKSPACE_MOUNT = "/workspace"
GPU_RESOURCE = "nvidia.com/gpu"
