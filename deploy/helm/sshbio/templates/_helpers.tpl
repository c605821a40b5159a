{{/* Labels every object carries. app.kubernetes.io/name matches deploy/kubernetes. */}}
{{- define "sshbio.labels" -}}
app.kubernetes.io/name: sshbio
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{/* What selects the sshbio pods of this release. */}}
{{- define "sshbio.selector" -}}
app.kubernetes.io/name: sshbio
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sshbio.redisLabels" -}}
app.kubernetes.io/name: sshbio-redis
app.kubernetes.io/part-of: sshbio
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{- define "sshbio.redisSelector" -}}
app.kubernetes.io/name: sshbio-redis
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
