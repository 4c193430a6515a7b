{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "labrador.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped full name. */}}
{{- define "labrador.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "labrador.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "labrador.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: labrador
{{- end -}}

{{- define "labrador.selectorLabels" -}}
app.kubernetes.io/name: {{ include "labrador.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "labrador.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "labrador.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "labrador.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "labrador.workloadImage" -}}
{{- printf "%s:%s" .Values.workloadImage.repository (default .Chart.AppVersion .Values.workloadImage.tag) -}}
{{- end -}}

{{/* Rules the operator needs in every namespace it watches. Nothing more: no Secret access at all. */}}
{{- define "labrador.namespacedRules" -}}
# Only the verbs the operator uses. Its own kinds: listed and watched (kopf, the cache); patch only so kopf can take
# off a finalizer that an older Labrador (per-object timers) put on; never get, update or delete.
- apiGroups: ["labrador.dev"]
  resources: ["taxonomies", "syntheticdatajobs", "finetunejobs"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["labrador.dev"]
  resources: ["taxonomies/status", "syntheticdatajobs/status", "finetunejobs/status"]
  verbs: ["patch"]
# Children carry ownerReferences with blockOwnerDeletion, which the API server's OwnerReferencesPermissionEnforcement
# allows only to who may update the owner's finalizers.
- apiGroups: ["labrador.dev"]
  resources: ["taxonomies/finalizers", "syntheticdatajobs/finalizers", "finetunejobs/finalizers"]
  verbs: ["update"]
# Children: created (a 409 means it exists), listed and watched (the cache), Jobs patched (suspend); the garbage
# collector deletes them with their parent. The one exception: a serving Deployment and its Service (spec.serve of a
# FineTuneJob) are patched when spec.serve changes and deleted when it is removed.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["list", "watch", "create"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "create", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
{{- if .Values.kserve.enabled }}
# spec.serve.runtime kserve: the serving InferenceService instead of the Deployment and Service, patched and deleted
# as they are (kserve.enabled: only where KServe is installed).
- apiGroups: ["serving.kserve.io"]
  resources: ["inferenceservices"]
  verbs: ["list", "watch", "create", "patch", "delete"]
{{- end }}
# Events: posted (kopf and the operator, core/v1); listed only for a Job still short of its pods: the Job
# controller's FailedCreate Event is the one place Kubernetes says why (quota, LimitRange, Pod Security), and the
# operator puts it on the resource's Running condition.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "list"]
{{- if include "labrador.peering" . }}
# Peering of an operator that watches named namespaces: one KopfPeering in each (see the cluster-wide one above).
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["get", "list", "watch", "create", "patch"]
{{- end }}
{{- end -}}

{{/*
Peering is on when asked for or when more than one replica runs ("true" or "").
*/}}
{{- define "labrador.peering" -}}
{{- if or .Values.operator.peering.enabled (gt (int .Values.operator.replicas) 1) -}}true{{- end -}}
{{- end -}}
