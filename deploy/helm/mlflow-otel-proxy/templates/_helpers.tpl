{{/* Name of every object: <release>-mlflow-otel-proxy, or the release name if it already says so. */}}
{{- define "mlflow-otel-proxy.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mlflow-otel-proxy.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
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
{{- $config := dict "mode" .Values.mode "destinations" .Values.destinations -}}
{{- if .Values.upstream.url -}}
{{- $upstream := dict "url" .Values.upstream.url "timeout" .Values.upstream.timeout -}}
{{- if .Values.upstream.headers -}}{{- $_ := set $upstream "headers" .Values.upstream.headers -}}{{- end -}}
{{- $_ := set $config "upstream" $upstream -}}
{{- end -}}
{{- $generated := dict -}}
{{- if .Values.spool.enabled -}}
{{- $spool := dict "directory" "/var/lib/mlflow-otel-proxy/spool" "max_bytes" (int64 .Values.spool.maxBytes) "fsync" .Values.spool.fsync -}}
{{- $_ := set $generated "sending_queue" (dict "spool" $spool) -}}
{{- end -}}
{{- $merged := mergeOverwrite $generated (deepCopy .Values.config) $config -}}
{{- toYaml $merged -}}
{{- end -}}
