{{- define "loopgate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "loopgate.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* selectorLabels: call with (dict "root" $ "component" "api") */}}
{{- define "loopgate.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "loopgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "loopgate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: the ServiceAccount to run as is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "loopgate.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Checks that fail the render with a message naming the value. */}}
{{- define "loopgate.validate" -}}
{{- if gt (int .Values.detector.replicas) (int .Values.kafka.partitions.upstream) -}}
{{- fail (printf "detector.replicas (%d) is more than kafka.partitions.upstream (%d): a detector beyond the partition count gets no partition and is never ready; lower detector.replicas or raise the partitions" (int .Values.detector.replicas) (int .Values.kafka.partitions.upstream)) -}}
{{- end -}}
{{- if and (hasPrefix "SASL" .Values.kafka.securityProtocol) (not .Values.kafka.existingSecret) -}}
{{- fail (printf "kafka.existingSecret: a Secret with keys username and password is required with kafka.securityProtocol %s" .Values.kafka.securityProtocol) -}}
{{- end -}}
{{- range $name, $_ := .Values.env -}}
{{- if not (hasPrefix "LOOPGATE_" $name) -}}
{{- fail (printf "env.%s: only LOOPGATE_* settings belong in env" $name) -}}
{{- end -}}
{{- if has $name (list "LOOPGATE_DATABASE_URL" "LOOPGATE_API_TOKEN" "LOOPGATE_KAFKA_SASL_PASSWORD" "LOOPGATE_SSO_CLIENT_SECRET") -}}
{{- fail (printf "env.%s is a secret: give it through a Kubernetes Secret (database.existingSecret, dispatcherToken.existingSecret, kafka.existingSecret)" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The settings every Loopgate container shares (no secret among them). */}}
{{- define "loopgate.env" -}}
- name: LOOPGATE_KAFKA_BOOTSTRAP
  value: {{ .Values.kafka.bootstrap | quote }}
- name: LOOPGATE_KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
{{- with .Values.kafka.saslMechanism }}
- name: LOOPGATE_KAFKA_SASL_MECHANISM
  value: {{ . | quote }}
{{- end }}
{{- if .Values.kafka.existingSecret }}
- name: LOOPGATE_KAFKA_SASL_USERNAME_FILE
  value: /var/run/secrets/loopgate/kafka/username
- name: LOOPGATE_KAFKA_SASL_PASSWORD_FILE
  value: /var/run/secrets/loopgate/kafka/password
{{- end }}
{{- if .Values.kafka.caSecret }}
- name: LOOPGATE_KAFKA_SSL_CAFILE
  value: /var/run/secrets/loopgate/kafka-ca/ca.crt
{{- end }}
- name: LOOPGATE_REPLICATION_FACTOR
  value: {{ .Values.kafka.replicationFactor | quote }}
- name: LOOPGATE_MIN_INSYNC_REPLICAS
  value: {{ .Values.kafka.minInsyncReplicas | quote }}
- name: LOOPGATE_UPSTREAM_PARTITIONS
  value: {{ .Values.kafka.partitions.upstream | quote }}
- name: LOOPGATE_EXCEPTIONS_PARTITIONS
  value: {{ .Values.kafka.partitions.exceptions | quote }}
- name: LOOPGATE_OUTCOMES_PARTITIONS
  value: {{ .Values.kafka.partitions.outcomes | quote }}
- name: LOOPGATE_DLQ_PARTITIONS
  value: {{ .Values.kafka.partitions.dlq | quote }}
- name: LOOPGATE_DETECTOR_METRICS_PORT
  value: {{ .Values.detector.metricsPort | quote }}
- name: LOOPGATE_DISPATCHER_METRICS_PORT
  value: {{ .Values.dispatcher.metricsPort | quote }}
- name: LOOPGATE_API_PORT
  value: {{ .Values.api.port | quote }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* The database URL as a file from its Secret (LOOPGATE_DATABASE_URL_FILE): never in the environment,
where `kubectl describe` and every child process would see the password. */}}
{{- define "loopgate.databaseEnv" -}}
- name: LOOPGATE_DATABASE_URL_FILE
  value: /var/run/secrets/loopgate/database/url
{{- end -}}

{{- define "loopgate.databaseMount" -}}
- name: database-url
  mountPath: /var/run/secrets/loopgate/database
  readOnly: true
{{- end -}}

{{/* The URL's volume; with (dict "root" $ "owner" true), the schema owner's URL (database.ownerKey). */}}
{{- define "loopgate.databaseVolume" -}}
{{- $root := .root | default . -}}
{{- $key := $root.Values.database.key -}}
{{- if and .owner $root.Values.database.ownerKey }}{{ $key = $root.Values.database.ownerKey }}{{ end -}}
- name: database-url
  secret:
    secretName: {{ required "database.existingSecret: the name of a Secret holding the database URL is required" $root.Values.database.existingSecret | quote }}
    defaultMode: 0440
    items:
      - key: {{ $key | quote }}
        path: url
{{- end -}}

{{- define "loopgate.secretMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.existingSecret }}
- name: kafka-credentials
  mountPath: /var/run/secrets/loopgate/kafka
  readOnly: true
{{- end }}
{{- if .Values.kafka.caSecret }}
- name: kafka-ca
  mountPath: /var/run/secrets/loopgate/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "loopgate.secretVolumes" -}}
- name: tmp
  emptyDir: {}
{{- with .Values.kafka.existingSecret }}
- name: kafka-credentials
  secret:
    secretName: {{ . | quote }}
    defaultMode: 0440
    items:
      - key: username
        path: username
      - key: password
        path: password
{{- end }}
{{- with .Values.kafka.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ . | quote }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end -}}

{{/* Pod-level fields shared by every workload. */}}
{{- define "loopgate.podSpecCommon" -}}
serviceAccountName: {{ include "loopgate.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
