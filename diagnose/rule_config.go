package diagnose

import (
	"fmt"
	"strings"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// maxListedRejections bounds the rejected resources named in evidence.
const maxListedRejections = 5

// ConfigRejectedRule finds configuration the proxy refused (NACKed): the *_update_rejected
// counters of CDS, LDS, RDS, SDS and ECDS, and the error_state of resources in the config dump.
type ConfigRejectedRule struct{}

// Meta describes the rule.
func (ConfigRejectedRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "ConfigRejectedRule",
		Description: "Finds xDS updates the proxy rejected (update_rejected counters, error_state in the config dump): the proxy then runs on stale configuration.",
		Codes:       []Code{CodeConfigRejected},
		AnyOf:       []Input{InputStats, InputConfig},
	}
}

// Check runs the rule.
func (ConfigRejectedRule) Check(s *Snapshot) []Finding {
	var ev, kinds []string
	var evidence []Evidence
	var total float64
	now := false // rejections seen during the window, or resources rejected at capture time
	if ss := s.latestStats(); ss != nil {
		for _, k := range sortedKeys(ss.Stats) {
			if !strings.HasSuffix(k, "_update_rejected") || ss.Stats[k] <= 0 {
				continue
			}
			cumulative := ss.Stats[k]
			total += cumulative
			kind := xdsKind(k)
			kinds = append(kinds, fmt.Sprintf("%s %.0f", kind, cumulative))
			m, _ := s.Counter(k)
			if m.Interval {
				now = now || m.Value > 0
				evidence = append(evidence, m.Evidence(kind+" updates rejected"))
			}
			evidence = append(evidence, Evidence{Label: kind + " updates rejected since proxy start", Value: cumulative, Unit: UnitCount, Source: statSource(s.StatsFile, ss, "", k)})
		}
	}
	if ss := s.latestStats(); ss != nil {
		for _, c := range sortedKeys(ss.Clusters) {
			cumulative := ss.Clusters[c].Values["update_rejected"]
			if cumulative <= 0 {
				continue
			}
			total += cumulative
			kinds = append(kinds, fmt.Sprintf("EDS of %s %.0f", c, cumulative))
			if m, ok := s.ClusterCounter(c, "update_rejected"); ok && m.Interval {
				now = now || m.Value > 0
			}
			evidence = append(evidence, Evidence{Label: "EDS (endpoints) updates of " + c + " rejected since proxy start", Value: cumulative, Unit: UnitCount, Source: statSource(s.StatsFile, ss, c, "update_rejected")})
		}
	}
	var rejected []envoyadmin.RejectedResource
	if s.Config != nil {
		rejected = s.Config.Rejected
	}
	for i, r := range rejected {
		now = true
		if i == maxListedRejections {
			evidence = append(evidence, Evidence{Label: "more rejected resources", Value: float64(len(rejected) - i), Unit: UnitCount, Source: "config_dump.json error_state"})
			break
		}
		label := fmt.Sprintf("%s %s rejected", r.Kind, r.Name)
		if !r.When.IsZero() && !s.Now.IsZero() {
			label += fmt.Sprintf(" (last attempt %s before capture)", s.Now.Sub(r.When).Round(time.Second))
		}
		evidence = append(evidence, Evidence{Label: label, Text: clip(oneLine(r.Details), 300), Source: "config_dump.json error_state.details"})
		ev = append(ev, r.Kind+" "+r.Name)
	}
	if total == 0 && len(rejected) == 0 {
		return nil
	}
	f := NewFinding(CodeConfigRejected, Subject{Kind: SubjectProxy, Name: proxyName(s)})
	cp := s.controlPlane()
	switch {
	case len(rejected) > 0:
		f.Title = fmt.Sprintf("The proxy rejected configuration from %s and runs without it: %s", cp.name, strings.Join(ev[:min(len(ev), 2)], ", "))
		if cp.istio {
			f.Title = fmt.Sprintf("The proxy rejected configuration from %s and runs without it (%s)", cp.name, strings.Join(ev[:min(len(ev), 2)], ", "))
		}
	case cp.istio:
		f.Title = fmt.Sprintf("The proxy rejected configuration updates from %s (%s)", cp.name, strings.Join(kinds, ", "))
	default:
		f.Title = fmt.Sprintf("The proxy rejected configuration updates from %s: %s", cp.name, strings.Join(kinds, ", "))
	}
	if s.Config != nil && s.Config.Proxy.IstioVersion != "" {
		evidence = append(evidence, Evidence{Label: "proxy's Istio version", Text: s.Config.Proxy.IstioVersion, Source: "config_dump.json bootstrap node metadata ISTIO_VERSION"})
	} else {
		evidence = append(evidence, cp.evidence)
	}
	f.Evidence = evidence
	f.Explanation = fmt.Sprintf("Envoy rejects (NACKs) an xDS update it cannot apply and keeps serving the last version it accepted, so whatever %s sent since — a new route, cluster, listener or certificate — is not in effect and this proxy runs on stale configuration. ", cp.name) + cp.causes
	if len(rejected) > 0 && rejected[0].Details != "" {
		f.Explanation += " Envoy's reason: " + clip(oneLine(rejected[0].Details), 300)
	}
	if !now {
		f.Severity = SeverityWarning
		if s.Config != nil {
			f.Explanation += " The counters are cumulative and the config dump shows no resource in error now, so a later update may have been accepted."
		} else {
			f.Explanation += " The counters are cumulative since the proxy started, and without the config dump nothing shows whether a resource is in error now: a later update may have been accepted."
		}
	}
	f.Fix = cp.fix(s)
	return []Finding{f}
}

// controlPlaneKind is what the evidence says about the control plane that configures the proxy,
// so findings name istiod and istioctl only for a proxy shown to be Istio's.
type controlPlaneKind struct {
	istio    bool
	name     string   // "istiod", or "its control plane (xDS server)"
	causes   string   // the usual causes of rejected updates
	evidence Evidence // what showed it, or what was looked for
}

// controlPlane tells whether the evidence shows an Istio proxy: ISTIO_VERSION in the config
// dump's node metadata, istio_* metrics, Istio cluster names (outbound|9080||host), Istio's
// xds-grpc cluster, or an istio-proxy container in the pod.
func (s *Snapshot) controlPlane() controlPlaneKind {
	shown, source := "", ""
	switch {
	case s.Config != nil && s.Config.Proxy.IstioVersion != "":
		shown, source = "ISTIO_VERSION "+s.Config.Proxy.IstioVersion, "config_dump.json bootstrap node metadata ISTIO_VERSION"
	case s.Has(InputIstioMetrics):
		shown, source = "istio_* metrics", orDefault(s.StatsFile, "stats")+" istio_requests_total, istio_request_duration_milliseconds"
	}
	if shown == "" {
		for _, n := range s.ClusterNames() {
			if envoyadmin.ParseClusterName(n).Direction != "" {
				shown, source = "Istio cluster name "+n, "cluster names in the evidence"
				break
			}
			if n == "xds-grpc" {
				shown, source = "the xds-grpc cluster of Istio's bootstrap", "cluster names in the evidence"
				break
			}
		}
	}
	if shown == "" && s.Pod != nil {
		for _, c := range s.Pod.Spec.Containers {
			if c.Name == "istio-proxy" {
				shown, source = "container istio-proxy", FilePod+" spec.containers"
			}
		}
	}
	if shown != "" {
		return controlPlaneKind{
			istio: true, name: "istiod",
			causes:   "Usual causes: an EnvoyFilter patch this Envoy version does not accept, a proxy older than istiod (version skew after an upgrade), or a VirtualService or DestinationRule value that passes validation but Envoy refuses.",
			evidence: Evidence{Label: "control plane", Text: "Istio (istiod): " + shown, Source: source},
		}
	}
	return controlPlaneKind{
		name:     "its control plane (xDS server)",
		causes:   "Usual causes: configuration the control plane generated that this Envoy version does not accept (control plane and Envoy at versions that do not match after an upgrade), or a resource, annotation or raw Envoy override a user gave the control plane that it passed on but Envoy refuses.",
		evidence: Evidence{Label: "control plane", Text: "not identified: no ISTIO_VERSION, istio_* metric, Istio cluster name, xds-grpc cluster or istio-proxy container in the evidence, so this is not taken for an Istio proxy", Source: "the evidence files present"},
	}
}

// fix is what to do about rejected updates, with the control plane's own tools when known.
func (cp controlPlaneKind) fix(s *Snapshot) Fix {
	ns, pod := s.podRef()
	if cp.istio {
		return Fix{
			Summary: "Find the Istio resource the rejected update came from (istiod logs the NACK with Envoy's reason) and fix or remove it.",
			Command: fmt.Sprintf("istioctl proxy-status %s.%s\nkubectl logs -n istio-system deploy/istiod | grep -E 'ACK ERROR|NACK' | grep %s\nistioctl analyze -n %s\nkubectl get envoyfilters -A", pod, ns, pod, ns),
		}
	}
	return Fix{
		Summary: "Find the resource the rejected update came from: Envoy logs every rejection with its reason (\"gRPC config for ... rejected\"), and the control plane's log records the NACK; fix or remove that resource in the control plane's configuration.",
		Command: fmt.Sprintf("kubectl logs -n %s %s -c <envoy-container> | grep -iE 'config.*rejected|NACK'    # Envoy's reason for each rejection\ncurl -s http://localhost:<admin-port>/config_dump | grep -B3 -A10 error_state    # inside the pod: the resources in error now", ns, pod),
	}
}

// xdsKind names the xDS API of an update_rejected counter.
func xdsKind(stat string) string {
	switch {
	case strings.HasPrefix(stat, "cluster_manager_cds"):
		return "CDS (clusters)"
	case strings.HasPrefix(stat, "listener_manager_lds"):
		return "LDS (listeners)"
	case strings.Contains(stat, "_rds_") || strings.HasPrefix(stat, "rds_"):
		return "RDS (routes)"
	case strings.HasPrefix(stat, "sds_") || strings.Contains(stat, "_sds_"):
		return "SDS (secrets)"
	case strings.Contains(stat, "extension_config_discovery") || strings.Contains(stat, "ecds"):
		return "ECDS (filter configs)"
	}
	return strings.TrimSuffix(stat, "_update_rejected")
}

// proxyName names the diagnosed proxy for subjects about the proxy as a whole.
func proxyName(s *Snapshot) string {
	ns, pod := s.podRef()
	if strings.HasPrefix(pod, "<") {
		return "this proxy"
	}
	return ns + "/" + pod
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
