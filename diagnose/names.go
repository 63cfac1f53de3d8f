package diagnose

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Names that come from evidence (a pod's name in meta.json, a cluster's host in the stats) go
// into the commands and YAML a finding prints. Evidence may come from a stranger: a name that
// is not a Kubernetes name is never printed into a command. It is replaced by the placeholder
// the command would show if the name were unknown, and a warning shows the name quoted.

// kubeName reports whether s is a valid name of a Kubernetes object (a DNS-1123 subdomain).
func kubeName(s string) bool {
	return len(s) <= validation.DNS1123SubdomainMaxLength && len(validation.IsDNS1123Subdomain(s)) == 0
}

// kubeLabel reports whether s is a valid namespace or Service name (a DNS-1123 label).
func kubeLabel(s string) bool {
	return len(s) <= validation.DNS1123LabelMaxLength && len(validation.IsDNS1123Label(s)) == 0
}

// checkedName returns name when it is a Kubernetes name (or empty), else the placeholder, and
// says so in the snapshot's warnings.
func (s *Snapshot) checkedName(file, what, name, placeholder string, valid func(string) bool) string {
	if name == "" || valid(name) {
		return name
	}
	s.Warnings = append(s.Warnings, fmt.Sprintf("%s: the %s %s is not a Kubernetes name; commands show %s instead", file, what, quoteShort(name), placeholder))
	return placeholder
}

// quoteShort quotes a name for a message, control characters escaped, clipped.
func quoteShort(s string) string { return fmt.Sprintf("%q", clip(s, 80)) }

// checkNames replaces the names of the snapshot that are not Kubernetes names. It runs once,
// when the evidence is loaded.
func (s *Snapshot) checkNames() {
	s.Meta.Pod = s.checkedName(FileMeta, "pod name", s.Meta.Pod, "<pod>", kubeName)
	s.Meta.Namespace = s.checkedName(FileMeta, "namespace", s.Meta.Namespace, "<namespace>", kubeLabel)
	if s.Config != nil {
		s.Config.Proxy.PodName = s.checkedName(FileConfigDump, "pod name", s.Config.Proxy.PodName, "<pod>", kubeName)
		s.Config.Proxy.Namespace = s.checkedName(FileConfigDump, "namespace", s.Config.Proxy.Namespace, "<namespace>", kubeLabel)
	}
	if p := s.Pod; p != nil {
		p.Name = s.checkedName(FilePod, "pod name", p.Name, "<pod>", kubeName)
		p.Namespace = s.checkedName(FilePod, "namespace", p.Namespace, "<namespace>", kubeLabel)
		p.Spec.NodeName = s.checkedName(FilePod, "node name", p.Spec.NodeName, "<node>", kubeName)
		for i := range p.Spec.Containers {
			p.Spec.Containers[i].Name = s.checkedName(FilePod, "container name", p.Spec.Containers[i].Name, "<container>", kubeLabel)
		}
		for i := range p.OwnerReferences {
			p.OwnerReferences[i].Name = s.checkedName(FilePod, "owner name", p.OwnerReferences[i].Name, "<owner>", kubeName)
		}
	}
	for i := range s.Services {
		s.Services[i].Name = s.checkedName(FileServices, "Service name", s.Services[i].Name, "<service>", kubeLabel)
		s.Services[i].Namespace = s.checkedName(FileServices, "namespace", s.Services[i].Namespace, "<namespace>", kubeLabel)
	}
	if h := s.Hop; h != nil {
		h.ServiceName = s.checkedName(FileHops, "Service name", h.ServiceName, "<service>", kubeLabel)
		h.ServiceNamespace = s.checkedName(FileHops, "namespace", h.ServiceNamespace, "<namespace>", kubeLabel)
		for i := range h.Pods {
			h.Pods[i].Pod = s.checkedName(FileHops, "pod name", h.Pods[i].Pod, "<pod>", kubeName)
			h.Pods[i].Namespace = s.checkedName(FileHops, "namespace", h.Pods[i].Namespace, "<namespace>", kubeLabel)
		}
	}
}

// yamlHost is a service host for generated YAML: the host when it is a DNS name (a leading
// "*." allowed), else the placeholder.
func yamlHost(host string) string {
	if kubeName(strings.TrimPrefix(host, "*.")) {
		return host
	}
	return "<service>.<namespace>.svc.cluster.local"
}
