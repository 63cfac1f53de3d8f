package collect

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/evidence"
)

// istioKind is one Istio resource a capture reads, with the versions to try, newest first
// (networking v1 is served from Istio 1.22 on; older control planes serve v1beta1).
type istioKind struct {
	kind, resource, group string
	versions              []string
}

var (
	kindPeerAuthentication = istioKind{"PeerAuthentication", "peerauthentications", "security.istio.io", []string{"v1", "v1beta1"}}
	kindDestinationRule    = istioKind{"DestinationRule", "destinationrules", "networking.istio.io", []string{"v1", "v1beta1"}}
	kindVirtualService     = istioKind{"VirtualService", "virtualservices", "networking.istio.io", []string{"v1", "v1beta1"}}
	// kindWaypoint is read for ambient pods: the Gateway API's Gateways, of which the rules
	// keep the waypoints (class istio-waypoint).
	kindWaypoint = istioKind{"Gateway", "gateways", "gateway.networking.k8s.io", []string{"v1"}}
	// kindAuthorizationPolicy is read for ambient pods: the policies ztunnel enforces for them.
	kindAuthorizationPolicy = istioKind{"AuthorizationPolicy", "authorizationpolicies", "security.istio.io", []string{"v1", "v1beta1"}}
)

// istio writes istio.yaml: the PeerAuthentications that apply to the pod or set its upstreams'
// namespace-wide mode, and the DestinationRules and VirtualServices of its upstream hosts that
// the pod's proxy sees.
func (r *captureRun) istio(ctx context.Context, pod *corev1.Pod, upstreams []string) {
	namespaces := map[string]bool{pod.Namespace: true, diagnose.IstioRootNamespace: true}
	for _, h := range upstreams {
		if _, ns, ok := envoyadmin.ServiceHostParts(h); ok {
			namespaces[ns] = true
		}
	}
	nsList := make([]string, 0, len(namespaces))
	for ns := range namespaces {
		nsList = append(nsList, ns)
	}
	sort.Strings(nsList)
	var items []map[string]any
	read := 0
	kinds := []istioKind{kindPeerAuthentication, kindDestinationRule, kindVirtualService}
	if checkSidecar(pod) != nil {
		// An ambient pod: the waypoints its traffic may be bound to, the policies ztunnel enforces.
		kinds = append(kinds, kindWaypoint, kindAuthorizationPolicy)
	}
	for _, k := range kinds {
		objs, ok := r.istioObjects(ctx, k, nsList)
		if !ok {
			continue
		}
		read++
		for _, o := range objs {
			if applies(k, o, pod, upstreams) {
				o.SetManagedFields(nil)
				items = append(items, o.Object)
			}
		}
	}
	if read == 0 {
		return
	}
	if items == nil {
		items = []map[string]any{}
	}
	r.writeList(evidence.Istio, "List", "v1", map[string]any{"items": items})
}

// istioObjects lists one Istio kind in the namespaces; ok is false when the kind could not be
// read at all (CRD missing or list forbidden everywhere), after a warning.
func (r *captureRun) istioObjects(ctx context.Context, k istioKind, namespaces []string) ([]unstructured.Unstructured, bool) {
	var out []unstructured.Unstructured
	var forbidden []string
	var forbiddenErr error
	for _, ns := range namespaces {
		got, err := r.o.KubeCache.get(k.resource+"."+k.group+"/"+ns, func() (any, error) { return r.listIstio(ctx, k, ns) })
		switch {
		case err == nil:
			out = append(out, got.([]unstructured.Unstructured)...)
		case apierrors.IsNotFound(err) || meta.IsNoMatchError(err):
			r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("Istio's %s CRD is not installed (%s.%s is not served): %ss skipped", k.kind, k.resource, k.group, k.kind))
			return nil, false
		default:
			forbidden, forbiddenErr = append(forbidden, ns), err
		}
	}
	if forbiddenErr != nil {
		r.kubeWarning(k.kind+"s for "+evidence.Istio, k.resource, k.group, strings.Join(forbidden, ", "), forbiddenErr)
	}
	return out, len(forbidden) < len(namespaces)
}

// listIstio lists a kind in a namespace, trying each served version in turn.
func (r *captureRun) listIstio(ctx context.Context, k istioKind, ns string) (any, error) {
	var err error
	for _, v := range k.versions {
		var l *unstructured.UnstructuredList
		gvr := schema.GroupVersionResource{Group: k.group, Version: v, Resource: k.resource}
		l, err = r.o.Dynamic.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			return l.Items, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
	}
	return nil, err
}

// applies decides whether an Istio object belongs in istio.yaml for this pod and its upstreams.
func applies(k istioKind, o unstructured.Unstructured, pod *corev1.Pod, upstreams []string) bool {
	raw, err := json.Marshal(o.Object)
	if err != nil {
		return false
	}
	var cfg diagnose.IstioConfig
	if cfg.Add(raw) != nil {
		return false
	}
	switch k.kind {
	case kindWaypoint.kind:
		class, _, _ := unstructured.NestedString(o.Object, "spec", "gatewayClassName")
		return class == "istio-waypoint"
	case kindAuthorizationPolicy.kind:
		return cfg.AuthorizationPolicies[0].AtZtunnel(pod.Namespace, pod.Labels)
	case kindPeerAuthentication.kind:
		pa := &cfg.PeerAuthentications[0]
		if pa.Selects(pod.Namespace, pod.Labels) {
			return true
		}
		namespaceWide := pa.Spec.Selector == nil || len(pa.Spec.Selector.MatchLabels) == 0
		for _, h := range upstreams {
			if _, ns, ok := envoyadmin.ServiceHostParts(h); ok && namespaceWide && pa.Namespace == ns {
				return true
			}
		}
	case kindDestinationRule.kind:
		for _, h := range upstreams {
			if cfg.DestinationRules[0].AppliesTo(pod.Namespace, h) {
				return true
			}
		}
	case kindVirtualService.kind:
		for _, h := range upstreams {
			if cfg.VirtualServices[0].AppliesTo(pod.Namespace, h) {
				return true
			}
		}
	}
	return false
}
