{{/* Names, labels and the environment the chart derives from values. */}}
{{- define "saker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "saker.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "saker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "saker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "saker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "saker.labels" -}}
helm.sh/chart: {{ include "saker.chart" . }}
{{ include "saker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: saker
{{- end -}}

{{- define "saker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "saker.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "saker.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.registry -}}
{{- printf "%s/%s:%s" .Values.image.registry .Values.image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* saker.statefulset: the spool and UI store live on a claim per replica. */}}
{{- define "saker.statefulset" -}}
{{- if .Values.persistence.enabled -}}true{{- end -}}
{{- end -}}

{{/* saker.spool: the embedded spool is on unless an external JetStream replaces it. */}}
{{- define "saker.spool" -}}
{{- if and .Values.spool.enabled (not .Values.bus.jetstream.url) -}}true{{- end -}}
{{- end -}}

{{/* saker.dataVolume: a /var/lib/saker volume exists (spool or persisted UI store). */}}
{{- define "saker.dataVolume" -}}
{{- if or (include "saker.spool" .) .Values.persistence.enabled -}}true{{- end -}}
{{- end -}}

{{/*
saker.envFlatten renders every non-empty leaf of a values map as NAME: base64 lines, NAME
being the key path upper-cased with "_" (falcosidekick's environment names: config.slack.webhookurl
is SLACK_WEBHOOKURL); lists become "a,b". Called with (dict "prefix" "" "value" MAP "skip" LIST).
*/}}
{{- define "saker.envFlatten" -}}
{{- $prefix := .prefix -}}
{{- $skip := .skip | default list -}}
{{- range $k, $v := .value -}}
{{- if not (has $k $skip) -}}
{{- $name := upper (printf "%s%s" $prefix $k) -}}
{{- if kindIs "map" $v -}}
{{- include "saker.envFlatten" (dict "prefix" (printf "%s_" $name) "value" $v) -}}
{{- else if kindIs "slice" $v -}}
{{- if $v }}
{{ $name }}: {{ join "," $v | b64enc | quote }}
{{- end -}}
{{- else if kindIs "invalid" $v -}}
{{- else if ne (toString $v) "" }}
{{ $name }}: {{ toString $v | b64enc | quote }}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* saker.uiPassword: the UI password given, else the one already in the release's Secret, else a new random one. */}}
{{- define "saker.uiPassword" -}}
{{- if .Values.ui.auth.password -}}
{{- .Values.ui.auth.password -}}
{{- else -}}
{{- $s := lookup "v1" "Secret" .Release.Namespace (include "saker.fullname" .) -}}
{{- if and $s $s.data (index $s.data "UI_AUTH_BASIC_PASSWORD") -}}
{{- index $s.data "UI_AUTH_BASIC_PASSWORD" | b64dec -}}
{{- else -}}
{{- randAlphaNum 24 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* saker.secretData: the chart's Secret (config.*, credentials); hashed into checksum/config. */}}
{{- define "saker.secretData" -}}
{{- include "saker.envFlatten" (dict "prefix" "" "value" .Values.config "skip" (list "existingSecret" "extraEnv" "extraArgs")) }}
{{- if .Values.auth.token }}
AUTH_TOKEN: {{ .Values.auth.token | b64enc | quote }}
{{- end }}
{{- if .Values.bus.jetstream.password }}
BUS_JETSTREAM_PASSWORD: {{ .Values.bus.jetstream.password | b64enc | quote }}
{{- end }}
{{- if and .Values.ui.enabled (not .Values.ui.auth.existingSecret) }}
{{- if .Values.ui.auth.token }}
UI_AUTH_TOKEN: {{ .Values.ui.auth.token | b64enc | quote }}
{{- end }}
{{- if .Values.ui.auth.user }}
UI_AUTH_BASIC_USER: {{ .Values.ui.auth.user | b64enc | quote }}
UI_AUTH_BASIC_PASSWORD: {{ include "saker.uiPassword" . | b64enc | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* saker.httpScheme: the scheme of the main and audit listeners. */}}
{{- define "saker.httpScheme" -}}
{{- if .Values.tls.enabled -}}https{{- else -}}http{{- end -}}
{{- end -}}

{{/* saker.validate fails on value combinations saker would refuse at start-up. */}}
{{- define "saker.validate" -}}
{{- if and .Values.auth.token .Values.auth.existingSecret -}}
{{- fail "auth.token and auth.existingSecret are exclusive: set one" -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) -}}
{{- fail "tls.enabled needs tls.existingSecret (a Secret with tls.crt and tls.key)" -}}
{{- end -}}
{{- if and .Values.bus.jetstream.url .Values.persistence.enabled (not .Values.ui.enabled) -}}
{{- fail "persistence.enabled keeps the spool and the UI store; with bus.jetstream.url and ui.enabled=false there is nothing to persist" -}}
{{- end -}}
{{- if not (has .Values.rules.matching (list "first" "all")) -}}
{{- fail (printf "rules.matching must be first or all, got %q" .Values.rules.matching) -}}
{{- end -}}
{{- end -}}
