{{- define "suffix" -}}{{ if .Values.revision }}-{{ .Values.revision }}{{ end }}{{- end -}}
{{- define "rev" -}}{{ .Values.revision | default "default" }}{{- end -}}
