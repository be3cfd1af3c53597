{{/* The chart's name, or nameOverride. */}}
{{- define "mlflow-otel-proxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Name of every object: fullnameOverride, else <release>-<name>, or the release name if it already says so. */}}
{{- define "mlflow-otel-proxy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "mlflow-otel-proxy.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The image: by digest when one is given, else by tag (default: the chart's appVersion). */}}
{{- define "mlflow-otel-proxy.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "mlflow-otel-proxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlflow-otel-proxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mlflow-otel-proxy.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "mlflow-otel-proxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "mlflow-otel-proxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mlflow-otel-proxy.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "mlflow-otel-proxy.secretName" -}}
{{- default (include "mlflow-otel-proxy.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "mlflow-otel-proxy.hasSecrets" -}}
{{- if or .Values.secrets.existingSecret .Values.secrets.values -}}true{{- end -}}
{{- end -}}

{{/* StatefulSet when the spool has persistent volumes (one per replica), Deployment otherwise. */}}
{{- define "mlflow-otel-proxy.workloadKind" -}}
{{- if and .Values.spool.enabled .Values.spool.persistence.enabled -}}StatefulSet{{- else -}}Deployment{{- end -}}
{{- end -}}

{{/* The proxy's configuration file, from the values. */}}
{{- define "mlflow-otel-proxy.config" -}}
{{- $mode := .Values.mode | default (ternary "dual" "auto" (and (not (empty .Values.upstream.url)) (not (empty .Values.destinations)))) -}}
{{- $config := dict "mode" $mode "destinations" .Values.destinations -}}
{{- if .Values.upstream.url -}}
{{- $upstream := dict "url" .Values.upstream.url "timeout" .Values.upstream.timeout -}}
{{- if .Values.upstream.headers -}}{{- $_ := set $upstream "headers" .Values.upstream.headers -}}{{- end -}}
{{- $_ := set $config "upstream" $upstream -}}
{{- end -}}
{{- $generated := dict -}}
{{- if and (not .Values.upstream.url) (not .Values.destinations) .Values.spool.enabled -}}
{{- /* Standalone without destinations writes traces to a file: in the spool volume (the root file system is read-only). */ -}}
{{- $_ := set $generated "traces_file" "/var/lib/mlflow-otel-proxy/spool/traces.jsonl" -}}
{{- end -}}
{{- if .Values.spool.enabled -}}
{{- $spool := dict "directory" "/var/lib/mlflow-otel-proxy/spool" "max_bytes" (int64 .Values.spool.maxBytes) "fsync" .Values.spool.fsync -}}
{{- $_ := set $generated "sending_queue" (dict "spool" $spool) -}}
{{- end -}}
{{- $merged := mergeOverwrite $generated (deepCopy .Values.config) $config -}}
{{- toYaml $merged -}}
{{- end -}}
