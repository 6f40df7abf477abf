{{/* Names, labels and small computations shared by every template. */}}

{{- define "aitestbed.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains "aitestbed" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-aitestbed" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "aitestbed.hub" -}}{{ include "aitestbed.fullname" . }}-hub{{- end -}}
{{- define "aitestbed.proxy" -}}{{ include "aitestbed.fullname" . }}-proxy{{- end -}}
{{- define "aitestbed.proxyPublic" -}}{{ include "aitestbed.fullname" . }}-proxy-public{{- end -}}
{{- define "aitestbed.portal" -}}{{ include "aitestbed.fullname" . }}-portal{{- end -}}
{{- define "aitestbed.portalPort" -}}{{ .Values.settings.site.portal_port | default 8090 }}{{- end -}}
{{/* Where the proxy and the sessions reach the portal: its Service (hub/portal-service.yaml). */}}
{{- define "aitestbed.portalURL" -}}http://{{ include "aitestbed.portal" . }}:{{ include "aitestbed.portalPort" . }}{{- end -}}
{{- define "aitestbed.userScheduler" -}}{{ include "aitestbed.fullname" . }}-user-scheduler{{- end -}}
{{- define "aitestbed.proxyApi" -}}{{ include "aitestbed.fullname" . }}-proxy-api{{- end -}}
{{- define "aitestbed.settings" -}}{{ include "aitestbed.fullname" . }}-settings{{- end -}}
{{- define "aitestbed.hubState" -}}{{ include "aitestbed.fullname" . }}-hub-state{{- end -}}
{{- define "aitestbed.secret" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "aitestbed.fullname" .)) -}}
{{- end -}}
{{- define "aitestbed.priority.core" -}}{{ include "aitestbed.fullname" . }}-core{{- end -}}
{{- define "aitestbed.priority.user" -}}{{ include "aitestbed.fullname" . }}-user{{- end -}}
{{- define "aitestbed.priority.placeholder" -}}{{ include "aitestbed.fullname" . }}-placeholder{{- end -}}

{{/*
Labels: the app/component/release trio selects pods (KubeSpawner labels user pods
app=aitestbed, component=singleuser-server), the app.kubernetes.io set is for tools.
*/}}
{{- define "aitestbed.labels" -}}
app: aitestbed
release: {{ .root.Release.Name }}
component: {{ .component }}
app.kubernetes.io/name: aitestbed
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "aitestbed.selector" -}}
app: aitestbed
release: {{ .root.Release.Name }}
component: {{ .component }}
{{- end -}}

{{- define "aitestbed.image" -}}
{{- printf "%s:%s" .repository .tag -}}{{ with .digest }}@{{ . }}{{ end }}
{{- end -}}

{{/* Pod-level security context shared by the chart's own pods. */}}
{{- define "aitestbed.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
fsGroup: {{ .Values.podSecurity.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security context: nothing a portal process needs beyond a plain user. */}}
{{- define "aitestbed.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
An egress ipBlock for a CIDR that never reaches the cloud metadata endpoint: when the
CIDR contains 169.254.169.254 (for example 0.0.0.0/0) it is excepted. IPv4 arithmetic:
both addresses fall in the same block of 2^(32-prefix) addresses exactly when their
integer values divided by the block size are equal.
*/}}
{{- define "aitestbed.ipBlock" -}}
{{- $parts := splitList "/" . -}}
{{- $prefix := 32 -}}
{{- if eq (len $parts) 2 -}}{{- $prefix = atoi (index $parts 1) -}}{{- end -}}
{{- $o := splitList "." (index $parts 0) -}}
ipBlock:
  cidr: {{ . }}
{{- if eq (len $o) 4 }}
{{- $ip := add (mul (atoi (index $o 0)) 16777216) (mul (atoi (index $o 1)) 65536) (mul (atoi (index $o 2)) 256) (atoi (index $o 3)) -}}
{{- $metadata := 2852039166 -}}
{{- $size := 1 -}}
{{- range $i := until (sub 32 $prefix | int) }}{{- $size = mul $size 2 -}}{{- end -}}
{{- if eq $ip $metadata }}
{{- fail (printf "%s is the cloud metadata endpoint (node credentials): the chart never opens it to pods." .) }}
{{- end }}
{{- if eq (div $ip $size) (div $metadata $size) }}
  except:
    - 169.254.169.254/32
{{- end }}
{{- end }}
{{- end -}}

{{/* Egress to DNS on port 53: the cluster DNS (networkPolicy.dns) and nothing else. */}}
{{- define "aitestbed.dnsEgress" -}}
{{- $dns := .Values.networkPolicy.dns -}}
- to:
    - namespaceSelector:
        matchLabels:
          {{- toYaml $dns.namespaceSelector | nindent 10 }}
      {{- with $dns.podSelector }}
      podSelector:
        matchLabels:
          {{- toYaml . | nindent 10 }}
      {{- end }}
    {{- range $dns.cidrs }}
    - {{ include "aitestbed.ipBlock" . | nindent 6 | trim }}
    {{- end }}
  ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end -}}

{{/*
The public internet: every address except the private ranges (RFC 1918, link-local with the
cloud metadata address, the shared 100.64.0.0/10 that some clusters use for pods) and the
cluster's own CIDRs (networkPolicy.clusterCIDRs).
*/}}
{{- define "aitestbed.privateCIDRs" -}}
{{- concat (list "10.0.0.0/8" "172.16.0.0/12" "192.168.0.0/16" "169.254.0.0/16" "100.64.0.0/10") .Values.networkPolicy.clusterCIDRs | uniq | toJson -}}
{{- end -}}

{{- define "aitestbed.publicIPBlock" -}}
ipBlock:
  cidr: 0.0.0.0/0
  except:
    {{- range (include "aitestbed.privateCIDRs" . | fromJsonArray) }}
    - {{ . }}
    {{- end }}
{{- end -}}

{{/* Egress to slurmrestd, when Slurm is connected. */}}
{{- define "aitestbed.slurmEgress" -}}
{{- if .Values.slurm.enabled }}
- to:
{{- range .Values.slurm.restdCIDRs }}
    - {{ include "aitestbed.ipBlock" . | nindent 6 | trim }}
{{- end }}
  ports:
    - {port: {{ .Values.slurm.restdPort }}, protocol: TCP}
{{- end }}
{{- end -}}
