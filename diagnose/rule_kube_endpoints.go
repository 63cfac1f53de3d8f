package diagnose

import (
	"fmt"
	"strings"

	discoveryv1 "k8s.io/api/discovery/v1"
)

// This file reads a service's EndpointSlices (endpointslices.yaml) for the NoHealthyUpstreamRule:
// a service whose slices hold no ready endpoint explains 503 UH from Kubernetes' side, and names
// the pods that are not ready.

// sliceEndpoints sums the endpoints of a service's EndpointSlices.
type sliceEndpoints struct {
	slices, total, ready int
	notReady             []string // pod names (or addresses) of endpoints that are not ready
	terminating          int
}

// serviceSlices reads the EndpointSlices of a service host; ok is false when the evidence holds
// none for it (not captured, or not a Kubernetes service).
func (s *Snapshot) serviceSlices(host string) (sliceEndpoints, bool) {
	var e sliceEndpoints
	name, ns := hostNameNamespace(host)
	if s.EndpointSlices == nil || ns == "" {
		return e, false
	}
	for i := range s.EndpointSlices {
		sl := &s.EndpointSlices[i]
		if sl.Namespace != ns || sl.Labels[discoveryv1.LabelServiceName] != name {
			continue
		}
		e.slices++
		for _, ep := range sl.Endpoints {
			e.total++
			// A nil ready condition means unknown, which consumers are to read as ready.
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				e.ready++
				continue
			}
			if ep.Conditions.Terminating != nil && *ep.Conditions.Terminating {
				e.terminating++
			}
			who := strings.Join(ep.Addresses, ",")
			if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
				who = ep.TargetRef.Name
			}
			e.notReady = append(e.notReady, who)
		}
	}
	return e, e.slices > 0
}

// addSliceEvidence adds what the EndpointSlices say about a no-healthy-upstream finding's
// service: the ready endpoint count, and when it is zero, why from Kubernetes' side.
func addSliceEvidence(s *Snapshot, f *Finding, cluster string, why []string) []string {
	host := serviceHost(cluster)
	if host == "" {
		return why
	}
	e, ok := s.serviceSlices(host)
	name, ns := hostNameNamespace(host)
	if !ok {
		if s.EndpointSlices != nil && ns != "" {
			f.Evidence = append(f.Evidence, Evidence{Label: "EndpointSlices of service " + ns + "/" + name, Value: 0, Unit: UnitCount, Source: FileEndpointSlices})
		}
		return why
	}
	src := fmt.Sprintf("%s kubernetes.io/service-name=%s in %s (%d slices)", FileEndpointSlices, name, ns, e.slices)
	f.Evidence = append(f.Evidence,
		Evidence{Label: "endpoints in the service's EndpointSlices", Value: float64(e.total), Unit: UnitCount, Source: src},
		Evidence{Label: "ready endpoints in the service's EndpointSlices", Value: float64(e.ready), Unit: UnitCount, Source: src + " conditions.ready"})
	if len(e.notReady) > 0 {
		shown := e.notReady[:min(len(e.notReady), maxListedHosts)]
		f.Evidence = append(f.Evidence, Evidence{Label: "endpoints not ready", Text: strings.Join(shown, ", "), Source: src + " targetRef"})
	}
	if e.ready > 0 {
		return why
	}
	switch {
	case e.total == 0:
		why = append(why, fmt.Sprintf("Kubernetes agrees: the EndpointSlices of %s/%s hold no endpoint at all, so its selector matches no running pod.", ns, name))
	case e.terminating == e.total:
		why = append(why, fmt.Sprintf("Kubernetes agrees: all %d endpoints of %s/%s are terminating, so the service was left without a pod during a rollout or a scale-down.", e.total, ns, name))
	default:
		why = append(why, fmt.Sprintf("Kubernetes agrees: none of the %d endpoints in the EndpointSlices of %s/%s is ready, so the pods exist but fail their readiness probe (or their sidecar is not ready); istiod sends the proxy no endpoint for them.", e.total, ns, name))
		f.Fix.Command = strings.TrimSpace(fmt.Sprintf("kubectl get pods -n %s %s    # the pods behind it: why are they not ready?\n%s", ns, strings.Join(e.notReady[:min(len(e.notReady), maxListedHosts)], " "), f.Fix.Command))
	}
	return why
}
