package diagnose

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/kubectl-mesh/kubectl-mesh/evidence"
)

// The Kubernetes evidence files, as `kubectl get -o yaml` prints the lists.
const (
	FileEvents         = evidence.Events
	FileServices       = evidence.Services
	FileEndpointSlices = evidence.EndpointSlices
	FileIstio          = evidence.Istio
)

// kube reads the Kubernetes evidence files. Each is optional; an empty list is kept as an
// empty (non-nil) slice, so rules can tell "none" from "not captured".
func (l *loader) kube() {
	if b := l.read(FileEvents); b != nil {
		var list corev1.EventList
		if l.decodeList(FileEvents, b, "EventList", &list) {
			l.s.Events = append([]corev1.Event{}, list.Items...)
		}
	}
	if b := l.read(FileServices); b != nil {
		var list corev1.ServiceList
		if l.decodeList(FileServices, b, "ServiceList", &list) {
			l.s.Services = append([]corev1.Service{}, list.Items...)
		}
	}
	if b := l.read(FileEndpointSlices); b != nil {
		var list discoveryv1.EndpointSliceList
		if l.decodeList(FileEndpointSlices, b, "EndpointSliceList", &list) {
			l.s.EndpointSlices = append([]discoveryv1.EndpointSlice{}, list.Items...)
		}
	}
	if b := l.read(FileIstio); b != nil {
		l.istio(b)
	}
}

// decodeList reads a list file into out; a file that does not parse, or holds another kind of
// list, becomes a warning.
func (l *loader) decodeList(file string, b []byte, kind string, out any) bool {
	var tm struct {
		Kind string `json:"kind"`
	}
	if err := unmarshalYAML(b, &tm); err != nil {
		l.warn(file, err)
		return false
	}
	if tm.Kind != "" && tm.Kind != kind && tm.Kind != "List" {
		l.warn(file, fmt.Errorf("holds a %s, not a %s", tm.Kind, kind))
		return false
	}
	if err := unmarshalYAML(b, out); err != nil {
		l.warn(file, err)
		return false
	}
	l.usable++
	return true
}

// istio reads istio.yaml, a v1 List of Istio objects; an item of another kind is skipped with a
// warning and the others are kept.
func (l *loader) istio(b []byte) {
	var list struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if err := unmarshalYAML(b, &list); err != nil {
		l.warn(FileIstio, err)
		return
	}
	if list.Kind != "" && list.Kind != "List" {
		l.warn(FileIstio, fmt.Errorf("holds a %s, not a List", list.Kind))
		return
	}
	cfg := &IstioConfig{}
	for i, raw := range list.Items {
		if err := cfg.Add(raw); err != nil {
			l.s.Warnings = append(l.s.Warnings, fmt.Sprintf("%s: item %d skipped: %v", FileIstio, i, err))
		}
	}
	l.s.Istio = cfg
	l.usable++
}
