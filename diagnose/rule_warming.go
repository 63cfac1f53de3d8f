package diagnose

import (
	"fmt"
	"strings"
)

// maxListedWarming bounds the warming resources named in evidence.
const maxListedWarming = 5

// WarmingRule finds configuration that arrived but cannot be used yet: clusters and listeners
// still warming in the config dump (waiting for their endpoints, a secret, or an initial
// fetch), and a proxy whose /certs lists no certificate at all (its secrets never came).
type WarmingRule struct{}

// Meta describes the rule.
func (WarmingRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "WarmingRule",
		Description: "Finds clusters and listeners stuck warming in the config dump, and a /certs with no certificate: resources the proxy waits for that never arrived.",
		Codes:       []Code{CodeConfigNotArrived},
		AnyOf:       []Input{InputConfig, InputCerts},
	}
}

// Check runs the rule.
func (WarmingRule) Check(s *Snapshot) []Finding {
	var out []Finding
	if s.Config != nil && len(s.Config.Warming) > 0 {
		w := s.Config.Warming
		f := NewFinding(CodeConfigNotArrived, Subject{Kind: SubjectProxy, Name: proxyName(s)})
		f.Severity = SeverityWarning
		f.Title = fmt.Sprintf("%d clusters or listeners are stuck warming", len(w))
		f.Evidence = []Evidence{{Label: "warming resources", Value: float64(len(w)), Unit: UnitCount, Source: FileConfigDump + " dynamic_warming_clusters / warming_state"},
			{Label: "warming", Text: strings.Join(w[:min(len(w), maxListedWarming)], ", "), Source: FileConfigDump}}
		f.Explanation = "Envoy received these resources but does not use them until what they depend on arrives: a cluster's endpoints (EDS) or TLS secret (SDS), a listener's routes or secrets. Traffic that needs them fails or takes the old version meanwhile. Warming for a moment after a push is normal; resources that stay warming wait for something the control plane does not send (a Service with no endpoints it knows, a secret it cannot find)."
		f.Fix = Fix{Summary: "Take a second config dump: resources still warming are stuck. Check that the control plane sends their endpoints and secrets.", Command: "istioctl proxy-status\nistioctl proxy-config endpoints <pod> -n <namespace> --cluster '<cluster>'"}
		out = append(out, f)
	}
	if s.NoCerts && len(s.Certs) == 0 {
		f := NewFinding(CodeConfigNotArrived, Subject{Kind: SubjectProxy, Name: proxyName(s)})
		f.Severity = SeverityWarning
		f.Title = "The proxy holds no certificate"
		f.Evidence = []Evidence{{Label: "certificates in /certs", Value: 0, Unit: UnitCount, Source: FileCerts}}
		f.Explanation = "The proxy's /certs lists no certificate. A mesh sidecar serves and checks mTLS with a workload certificate and a root that its agent (or SPIRE, or the mesh's SDS server) delivers over SDS: with none, every mTLS connection to or from it fails. A proxy that serves no TLS at all holds none, and this is then expected."
		f.Fix = Fix{Summary: "Check that the proxy's SDS source (istio-agent, the SPIRE agent, the mesh's controller) runs and can issue the workload's identity.", Command: "kubectl logs <pod> -n <namespace> -c istio-proxy | grep -iE 'sds|secret|certificate'"}
		out = append(out, f)
	}
	return out
}
