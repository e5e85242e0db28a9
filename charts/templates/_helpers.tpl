{{/* The chart name, or nameOverride. */}}
{{- define "platform-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource name. `helm install platform charts/` gives "platform-operator": a
chart name that already starts with the release name is used as it is.
*/}}
{{- define "platform-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if hasPrefix .Release.Name $name }}
{{- $name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "platform-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "platform-operator.labels" -}}
helm.sh/chart: {{ include "platform-operator.chart" . }}
{{ include "platform-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: platform
{{- end }}

{{- define "platform-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "platform-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "platform-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "platform-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the RabbitMQ administrator's credentials. */}}
{{- define "platform-operator.rabbitmqSecret" -}}
{{- default (printf "%s-rabbitmq" (include "platform-operator.fullname" .)) .Values.rabbitmq.existingSecret }}
{{- end }}

{{/* The Secret holding the Redis default user's password. */}}
{{- define "platform-operator.redisSecret" -}}
{{- default (printf "%s-redis" (include "platform-operator.fullname" .)) .Values.redis.existingSecret }}
{{- end }}

{{/* Where the operator reaches RabbitMQ's management API, and services its AMQP port. */}}
{{- define "platform-operator.rabbitmqManagementUrl" -}}
{{- if .Values.rabbitmq.enabled }}
{{- printf "http://%s-rabbitmq.%s.svc:15672" (include "platform-operator.fullname" .) .Release.Namespace }}
{{- else }}
{{- .Values.rabbitmq.managementUrl }}
{{- end }}
{{- end }}

{{- define "platform-operator.rabbitmqHost" -}}
{{- if .Values.rabbitmq.enabled }}
{{- printf "%s-rabbitmq.%s.svc" (include "platform-operator.fullname" .) .Release.Namespace }}
{{- else }}
{{- .Values.rabbitmq.host }}
{{- end }}
{{- end }}

{{- define "platform-operator.redisHost" -}}
{{- if .Values.redis.enabled }}
{{- printf "%s-redis.%s.svc" (include "platform-operator.fullname" .) .Release.Namespace }}
{{- else }}
{{- .Values.redis.host }}
{{- end }}
{{- end }}

{{/* The restricted Pod Security profile, for every container of the chart. */}}
{{- define "platform-operator.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* A password kept across upgrades: the live Secret's value if there is one, else a new one. */}}
{{- define "platform-operator.keptPassword" -}}
{{- $secret := lookup "v1" "Secret" .namespace .name }}
{{- if and $secret (index ($secret.data | default dict) .key) }}
{{- index $secret.data .key }}
{{- else }}
{{- randAlphaNum 32 | b64enc }}
{{- end }}
{{- end }}

{{- /* What the operator does to the objects it manages: exactly the verbs it uses. */}}
{{- define "platform-operator.namespacedRules" }}
- apiGroups: [platform.dev]
  resources: [platformservices]
  verbs: [get, list, watch, patch]
- apiGroups: [platform.dev]
  resources: [platformservices/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors, podmonitors]
  verbs: [get, create, patch, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/* The Secret holding the PostgreSQL admin role's password. */}}
{{- define "platform-operator.postgresSecret" -}}
{{- default (printf "%s-postgres" (include "platform-operator.fullname" .)) .Values.postgres.existingSecret }}
{{- end }}

{{- define "platform-operator.postgresHost" -}}
{{- if .Values.postgres.enabled }}
{{- printf "%s-postgres.%s.svc" (include "platform-operator.fullname" .) .Release.Namespace }}
{{- else }}
{{- .Values.postgres.host }}
{{- end }}
{{- end }}

{{/* The operator container's environment, before extraEnv (deployment.yaml drops what it replaces). */}}
{{- define "platform-operator.env" -}}
{{- $fullname := include "platform-operator.fullname" . }}
- name: PLATFORM_STANDALONE
  value: "false"
- name: PLATFORM_PEERING_NAME
  value: {{ $fullname }}
- name: PLATFORM_NAMESPACES
  value: {{ join "," .Values.watchNamespaces | quote }}
- name: PLATFORM_RESYNC_SECONDS
  value: {{ .Values.resyncSeconds | quote }}
- name: PLATFORM_SHARED_INGRESS_HOSTS
  value: {{ join "," .Values.sharedIngressHosts | quote }}
- name: PLATFORM_SWEEP_SECONDS
  value: {{ .Values.userSweepSeconds | quote }}
- name: PLATFORM_MAX_CONCURRENT_RECONCILES
  value: {{ .Values.maxConcurrentReconciles | quote }}
- name: PLATFORM_LIVENESS_PORT
  value: "8080"
- name: PLATFORM_METRICS_PORT
  value: {{ .Values.metrics.port | quote }}
- name: PLATFORM_OTEL_ENDPOINT
  value: {{ .Values.otelEndpoint | quote }}
- name: PLATFORM_LOG_LEVEL
  value: {{ .Values.logLevel | upper | quote }}
{{- $mgmt := include "platform-operator.rabbitmqManagementUrl" . }}
{{- if $mgmt }}
- name: PLATFORM_RABBITMQ_MANAGEMENT_URL
  value: {{ $mgmt | quote }}
- name: PLATFORM_RABBITMQ_ADMIN_USER
  valueFrom:
    secretKeyRef:
      name: {{ include "platform-operator.rabbitmqSecret" . }}
      key: username
- name: PLATFORM_RABBITMQ_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "platform-operator.rabbitmqSecret" . }}
      key: password
- name: PLATFORM_RABBITMQ_VHOST
  value: {{ .Values.rabbitmq.vhost | quote }}
- name: PLATFORM_RABBITMQ_SERVICE_HOST
  value: {{ include "platform-operator.rabbitmqHost" . | quote }}
- name: PLATFORM_RABBITMQ_SERVICE_PORT
  value: {{ .Values.rabbitmq.port | quote }}
{{- end }}
{{- $redisHost := include "platform-operator.redisHost" . }}
{{- if $redisHost }}
{{- /* The password stays apart from the URL: any character it holds (@ / # %) reaches the
operator intact, where a URL would need it percent-encoded. */}}
- name: PLATFORM_REDIS_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "platform-operator.redisSecret" . }}
      key: password
- name: PLATFORM_REDIS_URL
  value: "redis://{{ $redisHost }}:{{ .Values.redis.port }}/{{ .Values.redis.db }}"
- name: PLATFORM_REDIS_SERVICE_HOST
  value: {{ $redisHost | quote }}
- name: PLATFORM_REDIS_SERVICE_PORT
  value: {{ .Values.redis.port | quote }}
- name: PLATFORM_REDIS_DB
  value: {{ .Values.redis.db | quote }}
{{- end }}
{{- $postgresHost := include "platform-operator.postgresHost" . }}
{{- if $postgresHost }}
- name: PLATFORM_POSTGRES_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "platform-operator.postgresSecret" . }}
      key: password
- name: PLATFORM_POSTGRES_ADMIN_URL
  value: "postgresql://{{ .Values.postgres.adminUser }}@{{ $postgresHost }}:{{ .Values.postgres.port }}/{{ .Values.postgres.database }}"
- name: PLATFORM_POSTGRES_SERVICE_HOST
  value: {{ $postgresHost | quote }}
- name: PLATFORM_POSTGRES_SERVICE_PORT
  value: {{ .Values.postgres.port | quote }}
{{- end }}
{{- end }}
