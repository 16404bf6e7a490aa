{{/* Chart name, or nameOverride. */}}
{{- define "kaiwo-webhook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name: the release name when it contains the chart name (so
release "kaiwo-webhook" names everything kaiwo-webhook, as config/webhook does).
*/}}
{{- define "kaiwo-webhook.fullname" -}}
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

{{- define "kaiwo-webhook.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kaiwo-webhook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kaiwo-webhook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{- define "kaiwo-webhook.labels" -}}
helm.sh/chart: {{ include "kaiwo-webhook.chart" . }}
app.kubernetes.io/name: {{ include "kaiwo-webhook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: kaiwo
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kaiwo-webhook.serviceAccountName" -}}
{{ include "kaiwo-webhook.fullname" . }}
{{- end }}

{{/* The Secret cert-manager writes the serving certificate to. */}}
{{- define "kaiwo-webhook.certSecretName" -}}
{{ include "kaiwo-webhook.fullname" . }}-tls
{{- end }}

{{/* namespace/name of the Certificate whose CA cert-manager injects. */}}
{{- define "kaiwo-webhook.injectCAFrom" -}}
{{ .Release.Namespace }}/{{ include "kaiwo-webhook.fullname" . }}
{{- end }}

{{/*
Fields every webhook shares. Argument: (list $ path). Kept equal to
config/webhook by test/manifests.
*/}}
{{- define "kaiwo-webhook.webhookCommon" -}}
{{- $ := index . 0 -}}
admissionReviewVersions: [v1]
clientConfig:
  service:
    name: {{ include "kaiwo-webhook.fullname" $ }}
    namespace: {{ $.Release.Namespace }}
    path: {{ index . 1 }}
matchPolicy: Equivalent
sideEffects: None
timeoutSeconds: 5
{{- end }}

{{/* The namespaces the mutating webhooks never see: kube-system and our own. */}}
{{- define "kaiwo-webhook.namespaceSelector" -}}
namespaceSelector:
  matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: {{ list "kube-system" .Release.Namespace | uniq | toJson }}
{{- end }}
