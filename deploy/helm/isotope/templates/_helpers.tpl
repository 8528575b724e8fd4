{{/* The namespace of the control plane. */}}
{{- define "isotope.namespace" -}}
{{- default .Release.Namespace .Values.namespace -}}
{{- end -}}

{{/* Name of a role's objects: <release>-<role>, or <role> for release "isotope". */}}
{{- define "isotope.name" -}}
{{- $root := index . 0 -}}{{- $role := index . 1 -}}
{{- if eq $root.Release.Name "isotope" -}}isotope-{{ $role }}{{- else -}}{{ printf "%s-isotope-%s" $root.Release.Name $role | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "isotope.labels" -}}
{{- $root := index . 0 -}}{{- $role := index . 1 -}}
app.kubernetes.io/name: isotope
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ $role }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version }}
{{- end -}}

{{- define "isotope.selector" -}}
{{- $root := index . 0 -}}{{- $role := index . 1 -}}
app.kubernetes.io/name: isotope
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ $role }}
{{- end -}}

{{- define "isotope.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{- define "isotope.runtimeImage" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}
{{ index $root.Values.runtimeImages $name }}:{{ default $root.Chart.AppVersion $root.Values.image.tag }}
{{- end -}}

{{/* The URL of a role's Service inside the cluster. */}}
{{- define "isotope.url" -}}
{{- $root := index . 0 -}}{{- $role := index . 1 -}}
http://{{ include "isotope.name" (list $root $role) }}.{{ include "isotope.namespace" $root }}.svc
{{- end -}}

{{/*
A role's Deployment. Arguments: dict with root, role, command (the
subcommand words; default: the role), args (list), port (0: no port, no
probes), replicas, recreate, and optional volumes, volumeMounts, env
(extra container env vars).
*/}}
{{- define "isotope.deployment" -}}
{{- $root := .root -}}{{- $role := .role -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "isotope.name" (list $root $role) }}
  namespace: {{ include "isotope.namespace" $root }}
  labels:
    {{- include "isotope.labels" (list $root $role) | nindent 4 }}
spec:
  replicas: {{ default 1 .replicas }}
  {{- if .recreate }}
  strategy:
    type: Recreate
  {{- end }}
  selector:
    matchLabels:
      {{- include "isotope.selector" (list $root $role) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "isotope.labels" (list $root $role) | nindent 8 }}
    spec:
      serviceAccountName: {{ include "isotope.name" (list $root $role) }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        fsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: {{ $role }}
          image: {{ include "isotope.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            {{- range (default (list $role) .command) }}
            - {{ . }}
            {{- end }}
            {{- range .args }}
            - {{ . | quote }}
            {{- end }}
            {{- range (index $root.Values.extraArgs $role) }}
            - {{ . | quote }}
            {{- end }}
          env:
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            {{- if $root.Values.internalAuth.secretName }}
            - name: ISOTOPE_INTERNAL_AUTH_SECRET
              valueFrom:
                secretKeyRef:
                  name: {{ $root.Values.internalAuth.secretName }}
                  key: {{ $root.Values.internalAuth.key }}
            {{- end }}
            {{- with .env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- if .port }}
          ports:
            - name: http
              containerPort: {{ .port }}
              protocol: TCP
          readinessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 5
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            initialDelaySeconds: 10
            periodSeconds: 20
          {{- end }}
          resources:
            {{- toYaml (index $root.Values.resources $role) | nindent 12 }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
          {{- /* A writable /tmp; the root filesystem is read-only. */}}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- with .volumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir: {}
        {{- with .volumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}

{{/* A ClusterIP Service for a role's port. */}}
{{- define "isotope.service" -}}
{{- $root := .root -}}{{- $role := .role -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "isotope.name" (list $root $role) }}
  namespace: {{ include "isotope.namespace" $root }}
  labels:
    {{- include "isotope.labels" (list $root $role) | nindent 4 }}
spec:
  type: {{ default "ClusterIP" .type }}
  selector:
    {{- include "isotope.selector" (list $root $role) | nindent 4 }}
  ports:
    - name: http
      port: {{ default 80 .servicePort }}
      targetPort: http
      protocol: TCP
      {{- if and .nodePort (eq (default "ClusterIP" .type) "NodePort") }}
      nodePort: {{ .nodePort }}
      {{- end }}
{{- end -}}
