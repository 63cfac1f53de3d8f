package diagnose

import (
	"fmt"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// This file adds the Istio objects of istio.yaml to the MTLSRule's mode-mismatch finding
// (MESH0802): the DestinationRule that sets the client's TLS mode and the PeerAuthentication
// that sets the server's, named, so the finding says which two objects disagree instead of
// inferring it from the proxy's side alone.

// addIstioPolicyEvidence names the DestinationRule and PeerAuthentication behind a TLS mode
// mismatch of a cluster, when istio.yaml holds them.
func addIstioPolicyEvidence(s *Snapshot, f *Finding, cluster string) {
	if s.Istio == nil {
		return
	}
	host := serviceHost(cluster)
	if host == "" {
		return
	}
	clientNS, _ := s.podRef()
	_, svcNS := hostNameNamespace(host)
	subset := envoyadmin.ParseClusterName(cluster).Subset
	dr := s.Istio.DestinationRuleFor(clientNS, host)
	drMode := ""
	if dr != nil {
		drMode = dr.TLSMode(subset)
		f.Evidence = append(f.Evidence, Evidence{
			Label:  "DestinationRule for " + host,
			Text:   fmt.Sprintf("%s (host %s): tls.mode %s", dr.Ref(), dr.Spec.Host, orDefault(drMode, "not set")),
			Source: FileIstio + " DestinationRule " + dr.Ref() + " spec.trafficPolicy.tls.mode",
		})
	}
	pa := s.Istio.NamespaceMTLS(svcNS)
	if pa != nil {
		f.Evidence = append(f.Evidence, Evidence{
			Label:  "PeerAuthentication of namespace " + svcNS,
			Text:   fmt.Sprintf("%s: mtls.mode %s", pa.Ref(), pa.Mode()),
			Source: FileIstio + " PeerAuthentication " + pa.Ref() + " spec.mtls.mode",
		})
	}
	if dr == nil {
		return
	}
	f.Fix.YAML = strings.Replace(f.Fix.YAML, "(its name may differ)", "("+dr.Ref()+")", 1)
	f.Fix.Command = strings.TrimSpace(fmt.Sprintf("kubectl get destinationrule -n %s %s -o yaml    # the rule that sets tls.mode %s\n%s", dr.Namespace, dr.Name, orDefault(drMode, "(none)"), f.Fix.Command))
	if pa == nil || pa.Mode() != "STRICT" || (drMode != envoyadmin.TLSModePlaintext && drMode != envoyadmin.TLSModeSimple) {
		f.Fix.Summary = fmt.Sprintf("DestinationRule %s sets this mode. ", dr.Ref()) + f.Fix.Summary
		return
	}
	scope := "the namespace " + svcNS
	if pa.Namespace == IstioRootNamespace && svcNS != IstioRootNamespace {
		scope = "the whole mesh"
	}
	confirmed := fmt.Sprintf("The captured Istio configuration confirms the mismatch: DestinationRule %s sets tls.mode %s for %s, while PeerAuthentication %s requires mTLS (STRICT) for %s, so the server side's sidecars refuse what this proxy sends.", dr.Ref(), drMode, host, pa.Ref(), scope)
	// The finding's caveat that this proxy cannot see the server's side no longer holds.
	if i := strings.Index(f.Explanation, " This proxy cannot see the server's side"); i >= 0 {
		rest := f.Explanation[i+1:]
		end := strings.Index(rest, "restarts instead.")
		if end >= 0 {
			f.Explanation = f.Explanation[:i+1] + confirmed + rest[end+len("restarts instead."):]
		} else {
			f.Explanation += " " + confirmed
		}
	} else {
		f.Explanation += " " + confirmed
	}
	f.Fix.Summary = fmt.Sprintf("Delete the tls block from DestinationRule %s (auto mTLS then sends mTLS to the sidecars of %s), or set tls.mode ISTIO_MUTUAL; PeerAuthentication %s stays STRICT.", dr.Ref(), host, pa.Ref())
}
