{{/*
Names and labels shared by every template of the wattscale chart.
*/}}

{{/* The chart name, overridable with nameOverride. */}}
{{- define "wattscale.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The fully qualified app name: <release>-wattscale, or just <release> when it already contains
the chart name. Truncated to 63 characters (DNS label limit).
*/}}
{{- define "wattscale.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart name and version, as used by the helm.sh/chart label. */}}
{{- define "wattscale.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object the chart creates. */}}
{{- define "wattscale.labels" -}}
helm.sh/chart: {{ include "wattscale.chart" . }}
{{ include "wattscale.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: wattscale
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels that select the operator pod (never change them: Deployment selectors are immutable). */}}
{{- define "wattscale.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wattscale.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "wattscale.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "wattscale.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image: repository:tag, or repository@digest when a digest is given. */}}
{{- define "wattscale.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Namespace the dashboard ConfigMaps go to (Grafana's sidecar may watch another one). */}}
{{- define "wattscale.dashboardsNamespace" -}}
{{- default .Release.Namespace .Values.dashboards.namespace }}
{{- end }}

{{/* RBAC rules for InferenceDeployments and their Events (a ClusterRole's or a Role's). */}}
{{- define "wattscale.rbac.deploymentRules" -}}
# Watch InferenceDeployments; patch them for kopf's annotations and finalizer; report status.
- apiGroups: ["wattscale.io"]
  resources: ["inferencedeployments"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["wattscale.io"]
  resources: ["inferencedeployments/status"]
  verbs: ["patch"]
# One Event per decision, attached to the InferenceDeployment (kopf posts core/v1 Events;
# events.k8s.io is the newer API for the same objects).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* RBAC rules for the vLLM Deployment and Service on the hub: read by name, server-side
apply (create + patch), /scale, delete on cleanup. No list, watch or update. */}}
{{- define "wattscale.rbac.workloadRules" -}}
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "create", "patch", "delete"]
{{- end }}

{{/* RBAC rules for traffic weights on the HTTPRoute an InferenceDeployment names. */}}
{{- define "wattscale.rbac.routeRules" -}}
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "patch"]
{{- end }}

{{/* A RoleBinding of the Role `name` in `namespace` to the operator's ServiceAccount. */}}
{{- define "wattscale.rbac.roleBinding" -}}
{{- $root := .root }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ .name }}
  namespace: {{ .namespace }}
  labels:
    {{- include "wattscale.labels" $root | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ .name }}
subjects:
  - kind: ServiceAccount
    name: {{ include "wattscale.serviceAccountName" $root }}
    namespace: {{ $root.Release.Namespace }}
{{- end }}
