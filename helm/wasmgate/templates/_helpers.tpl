{{/* Chart name, cut to the 63 characters a label value may have. */}}
{{- define "wasmgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object name prefix: the release name, followed by the chart name unless it contains it. */}}
{{- define "wasmgate.fullname" -}}
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

{{/* Labels that select the gate's Pods; they never change between upgrades. */}}
{{- define "wasmgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wasmgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "wasmgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "wasmgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The ServiceAccount the Pods run as. */}}
{{- define "wasmgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "wasmgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The ConfigMap holding the policy file. */}}
{{- define "wasmgate.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "wasmgate.fullname" .)) .Values.policy.existingConfigMap }}
{{- end }}

{{/* The image reference: repository with the digest if set, else with the tag. */}}
{{- define "wasmgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The TCP port of gate.upstream: the explicit one, else 443 for https and 80 for http. */}}
{{- define "wasmgate.upstreamPort" -}}
{{- $url := urlParse .Values.gate.upstream }}
{{- $explicit := regexFind ":[0-9]+$" $url.host }}
{{- if $explicit }}
{{- trimPrefix ":" $explicit }}
{{- else }}
{{- ternary "443" "80" (eq $url.scheme "https") }}
{{- end }}
{{- end }}

{{/* Directories where Secrets are mounted; none lies inside the policy mount, because a
nested mount point cannot be created in a read-only ConfigMap volume. */}}
{{- define "wasmgate.tlsDir" -}}/var/run/secrets/wasmgate/tls{{- end }}
{{- define "wasmgate.clientCADir" -}}/var/run/secrets/wasmgate/client-ca{{- end }}
{{- define "wasmgate.upstreamCADir" -}}/var/run/secrets/wasmgate/upstream-ca{{- end }}
{{- define "wasmgate.upstreamClientDir" -}}/var/run/secrets/wasmgate/upstream-client{{- end }}

{{/* Fails the render when values contradict each other. */}}
{{- define "wasmgate.validate" -}}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName, a kubernetes.io/tls Secret with tls.crt and tls.key" }}
{{- end }}
{{- if and .Values.tls.clientCA.enabled (not .Values.tls.enabled) }}
{{- fail "tls.clientCA.enabled needs tls.enabled: client certificates are verified during the TLS handshake" }}
{{- end }}
{{- if and (not .Values.policy.existingConfigMap) (not .Values.policy.content) }}
{{- fail "set policy.content or policy.existingConfigMap: the gate needs a policy file" }}
{{- end }}
{{- $needed := add .Values.preStopSleepSeconds .Values.gate.shutdownGraceSeconds }}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds plus gate.shutdownGraceSeconds (%d), or in-flight pushes are killed" (int .Values.terminationGracePeriodSeconds) (int $needed)) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (not (or .Values.autoscaling.targetCPUUtilizationPercentage .Values.autoscaling.targetMemoryUtilizationPercentage)) }}
{{- fail "autoscaling.enabled needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" }}
{{- end }}
{{- end }}
