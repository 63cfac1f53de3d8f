package diagnose

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The Istio objects of istio.yaml are decoded into the small typed subset below rather than into
// istio.io/api's networking/v1 and security/v1 types. Those are protobuf messages whose
// UnmarshalJSON goes through github.com/golang/protobuf/jsonpb, a module this build does not
// otherwise need (and whose go.sum entries it lacks); the rules read a handful of fields, and
// the JSON field names below are the CRDs' own (the same as protojson's), so an object that
// kubectl prints decodes the same way. Unknown fields are ignored, as Istio's own lenient
// parsing of a newer API would.

// IstioRootNamespace is where mesh-wide Istio objects live unless the mesh config moves it.
const IstioRootNamespace = "istio-system"

// IstioConfig holds the Istio objects of istio.yaml that apply to the pod and its upstreams.
type IstioConfig struct {
	PeerAuthentications []PeerAuthentication
	DestinationRules    []DestinationRule
	VirtualServices     []VirtualService
	// Waypoints are the Gateways of class istio-waypoint an ambient pod's capture read, and
	// AuthorizationPolicies the policies that bind it at ztunnel.
	Waypoints             []Waypoint
	AuthorizationPolicies []AuthorizationPolicy
}

// Waypoint is the part of a gateway.networking.k8s.io Gateway of class istio-waypoint the
// rules read: istiod's Programmed condition.
type Waypoint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		GatewayClassName string `json:"gatewayClassName"`
	} `json:"spec"`
	Status struct {
		Conditions []metav1.Condition `json:"conditions"`
	} `json:"status"`
}

// Programmed is istiod's Programmed condition: true, or why not ("" when istiod wrote none).
func (w *Waypoint) Programmed() (bool, string) {
	c := meta.FindStatusCondition(w.Status.Conditions, "Programmed")
	if c == nil {
		return false, ""
	}
	return c.Status == metav1.ConditionTrue, strings.TrimSpace(c.Reason + ": " + c.Message)
}

// PeerAuthentication is the part of security.istio.io PeerAuthentication the rules read.
type PeerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector *struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		MTLS *struct {
			Mode string `json:"mode"`
		} `json:"mtls"`
	} `json:"spec"`
}

// Mode returns spec.mtls.mode, "" when unset (UNSET inherits too).
func (p *PeerAuthentication) Mode() string {
	if p.Spec.MTLS == nil || p.Spec.MTLS.Mode == "UNSET" {
		return ""
	}
	return p.Spec.MTLS.Mode
}

// Ref names the object as "namespace/name".
func (p *PeerAuthentication) Ref() string { return p.Namespace + "/" + p.Name }

// Selects reports whether the policy applies to a workload with these labels in namespace ns:
// a policy without a selector applies to its whole namespace, or to the mesh in the root
// namespace.
func (p *PeerAuthentication) Selects(ns string, labels map[string]string) bool {
	var match map[string]string
	if p.Spec.Selector != nil {
		match = p.Spec.Selector.MatchLabels
	}
	return selects(p.Namespace, match, ns, labels)
}

// selects is how Istio's security policies bind workloads: without a selector every workload
// of their namespace, or of every namespace from the root namespace; with one, the workloads
// of their namespace whose labels match it.
func selects(policyNS string, match map[string]string, ns string, labels map[string]string) bool {
	if len(match) == 0 {
		return policyNS == ns || policyNS == IstioRootNamespace
	}
	if policyNS != ns {
		return false
	}
	for k, v := range match {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TrafficPolicy is the part of a DestinationRule's trafficPolicy the rules read.
type TrafficPolicy struct {
	TLS *struct {
		Mode string `json:"mode"`
	} `json:"tls"`
}

// DestinationRule is the part of networking.istio.io DestinationRule the rules read.
type DestinationRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Host          string         `json:"host"`
		ExportTo      []string       `json:"exportTo"`
		TrafficPolicy *TrafficPolicy `json:"trafficPolicy"`
		Subsets       []struct {
			Name          string            `json:"name"`
			Labels        map[string]string `json:"labels"`
			TrafficPolicy *TrafficPolicy    `json:"trafficPolicy"`
		} `json:"subsets"`
	} `json:"spec"`
}

// Ref names the object as "namespace/name".
func (d *DestinationRule) Ref() string { return d.Namespace + "/" + d.Name }

// TLSMode returns the trafficPolicy's tls.mode for a subset (its own, else the top-level one).
func (d *DestinationRule) TLSMode(subset string) string {
	for _, s := range d.Spec.Subsets {
		if s.Name == subset && s.TrafficPolicy != nil && s.TrafficPolicy.TLS != nil {
			return s.TrafficPolicy.TLS.Mode
		}
	}
	if tp := d.Spec.TrafficPolicy; tp != nil && tp.TLS != nil {
		return tp.TLS.Mode
	}
	return ""
}

// AppliesTo reports whether a proxy in clientNS sees the rule (exportTo) and its host matches
// the service host.
func (d *DestinationRule) AppliesTo(clientNS, host string) bool {
	return exportedTo(d.Namespace, d.Spec.ExportTo, clientNS) && IstioHostMatches(d.Spec.Host, d.Namespace, host)
}

// HTTPRoute is the part of a VirtualService's http route the rules read.
type HTTPRoute struct {
	Name    string `json:"name"`
	Timeout string `json:"timeout"`
	Retries *struct {
		Attempts      int32  `json:"attempts"`
		PerTryTimeout string `json:"perTryTimeout"`
		RetryOn       string `json:"retryOn"`
	} `json:"retries"`
	Route []struct {
		Destination struct {
			Host   string `json:"host"`
			Subset string `json:"subset"`
		} `json:"destination"`
		Weight int32 `json:"weight"`
	} `json:"route"`
}

// VirtualService is the part of networking.istio.io VirtualService the rules read.
type VirtualService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Hosts    []string    `json:"hosts"`
		Gateways []string    `json:"gateways"`
		ExportTo []string    `json:"exportTo"`
		HTTP     []HTTPRoute `json:"http"`
	} `json:"spec"`
}

// Ref names the object as "namespace/name".
func (v *VirtualService) Ref() string { return v.Namespace + "/" + v.Name }

// AppliesTo reports whether sidecars in clientNS get the VirtualService (it is exported there
// and bound to the mesh gateway, the default) and one of its hosts matches the service host.
func (v *VirtualService) AppliesTo(clientNS, host string) bool {
	if !exportedTo(v.Namespace, v.Spec.ExportTo, clientNS) {
		return false
	}
	if len(v.Spec.Gateways) > 0 && !contains(v.Spec.Gateways, "mesh") {
		return false
	}
	for _, h := range v.Spec.Hosts {
		if IstioHostMatches(h, v.Namespace, host) {
			return true
		}
	}
	return false
}

// Add decodes one object of istio.yaml (JSON) by its kind. Other kinds are an error.
func (c *IstioConfig) Add(raw []byte) error {
	var tm metav1.TypeMeta
	if err := json.Unmarshal(raw, &tm); err != nil {
		return err
	}
	var err error
	switch tm.Kind {
	case "PeerAuthentication":
		var o PeerAuthentication
		if err = json.Unmarshal(raw, &o); err == nil {
			c.PeerAuthentications = append(c.PeerAuthentications, o)
		}
	case "DestinationRule":
		var o DestinationRule
		if err = json.Unmarshal(raw, &o); err == nil {
			c.DestinationRules = append(c.DestinationRules, o)
		}
	case "VirtualService":
		var o VirtualService
		if err = json.Unmarshal(raw, &o); err == nil {
			c.VirtualServices = append(c.VirtualServices, o)
		}
	case "AuthorizationPolicy":
		var o AuthorizationPolicy
		if err = json.Unmarshal(raw, &o); err == nil {
			c.AuthorizationPolicies = append(c.AuthorizationPolicies, o)
		}
	case "Gateway":
		var o Waypoint
		if err = json.Unmarshal(raw, &o); err == nil && strings.HasPrefix(o.APIVersion, "gateway.networking.k8s.io/") {
			c.Waypoints = append(c.Waypoints, o)
		}
	default:
		return fmt.Errorf("a %s %q is not a PeerAuthentication, DestinationRule, VirtualService, AuthorizationPolicy or waypoint Gateway", orDefault(tm.Kind, "object without kind"), tm.APIVersion)
	}
	return err
}

// IstioHostMatches reports whether a host as written in an Istio object of namespace objNS
// (a short name, an FQDN, "*" or "*.suffix") matches a service host
// ("reviews.default.svc.cluster.local"). As istiod does, only a name without a dot is
// completed with the object's namespace and the cluster domain; "reviews.default" is taken as it
// is, and matches nothing in the cluster.
func IstioHostMatches(pattern, objNS, host string) bool {
	pattern, host = strings.ToLower(pattern), strings.ToLower(host)
	switch {
	case pattern == "*":
		return true
	case strings.HasPrefix(pattern, "*."):
		return strings.HasSuffix(host, pattern[1:])
	case !strings.Contains(pattern, ".") && net.ParseIP(pattern) == nil:
		return strings.HasPrefix(host, pattern+"."+objNS+".svc.")
	}
	return pattern == host
}

// exportedTo applies Istio's exportTo: empty or "*" is every namespace, "." the object's own,
// "~" none, anything else a namespace name.
func exportedTo(objNS string, exportTo []string, clientNS string) bool {
	if len(exportTo) == 0 || objNS == clientNS && !contains(exportTo, "~") {
		return true
	}
	for _, e := range exportTo {
		if e == "*" || e == clientNS || e == "." && objNS == clientNS {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// DestinationRuleFor returns the DestinationRule a proxy in clientNS applies to a service
// host, as istiod picks it: one in the client's namespace first, then the service's, then the
// root namespace, an exact host before a wildcard. nil when none applies.
func (c *IstioConfig) DestinationRuleFor(clientNS, host string) *DestinationRule {
	if c == nil {
		return nil
	}
	_, svcNS := hostNameNamespace(host)
	var best *DestinationRule
	bestRank := 0
	for i := range c.DestinationRules {
		d := &c.DestinationRules[i]
		if !d.AppliesTo(clientNS, host) {
			continue
		}
		rank := 1
		switch d.Namespace {
		case clientNS:
			rank = 6
		case svcNS:
			rank = 4
		case IstioRootNamespace:
			rank = 2
		}
		if !strings.Contains(d.Spec.Host, "*") {
			rank++
		}
		if rank > bestRank {
			best, bestRank = d, rank
		}
	}
	return best
}

// NamespaceMTLS returns the PeerAuthentication that sets the mTLS mode of a namespace's
// workloads as a whole: the namespace's own policy without a selector, else the mesh-wide one
// in the root namespace. nil when neither sets a mode.
func (c *IstioConfig) NamespaceMTLS(ns string) *PeerAuthentication {
	if c == nil {
		return nil
	}
	var mesh *PeerAuthentication
	for i := range c.PeerAuthentications {
		p := &c.PeerAuthentications[i]
		if p.Spec.Selector != nil && len(p.Spec.Selector.MatchLabels) > 0 || p.Mode() == "" {
			continue
		}
		if p.Namespace == ns {
			return p
		}
		if p.Namespace == IstioRootNamespace {
			mesh = p
		}
	}
	return mesh
}

// VirtualServicesFor returns the VirtualServices that proxies in clientNS apply to a host.
func (c *IstioConfig) VirtualServicesFor(clientNS, host string) []*VirtualService {
	if c == nil {
		return nil
	}
	var out []*VirtualService
	for i := range c.VirtualServices {
		if c.VirtualServices[i].AppliesTo(clientNS, host) {
			out = append(out, &c.VirtualServices[i])
		}
	}
	return out
}
