package diagnose

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// maxQuotedLogLines bounds the proxy log lines quoted in one finding.
const maxQuotedLogLines = 3

// ProxyLogRule reads the proxy's and istio-agent's own log lines that report a problem: config
// it rejected, resources or secrets that never arrived, readiness failures, a control plane it
// cannot reach, certificates it cannot get or that expired. They are what users see first in
// `kubectl logs -c istio-proxy`, and often all they have.
type ProxyLogRule struct{}

// Meta describes the rule.
func (ProxyLogRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "ProxyLogRule",
		Description: "Reads the proxy's and istio-agent's own warnings and errors in its log: rejected config, initial fetch timeouts and missing secrets, readiness failures, xDS connection failures, certificate errors.",
		Codes:       explainCodes(), // its own kinds, and whatever the explain scanner finds in other lines
		Needs:       []Input{InputProxyLog},
	}
}

// Check runs the rule.
func (ProxyLogRule) Check(s *Snapshot) []Finding {
	src := func(line int) string { return fmt.Sprintf("%s line %d", FileAccessLog, line) }
	out := proxyLogFindings(s.ProxyLog, proxyName(s), src)
	if len(s.LogOther) == 0 {
		return out
	}
	// The log's other lines: what the explain scanner finds in them (the router's debug lines,
	// a connection's TLS error, a reply body an application logged) is about single requests,
	// so an error is reported as a warning.
	cluster := ""
	for _, l := range s.LogOther {
		if cluster = clusterName.FindString(l.Text); cluster != "" {
			break
		}
	}
	scan := newTextScan(cluster, src)
	for _, l := range s.LogOther {
		scan.line(l.N, l.Text)
	}
	for _, f := range scan.found {
		if f.Severity == SeverityError {
			f.Severity = SeverityWarning
		}
		out = mergeFindings(out, []Finding{f})
	}
	return out
}

// proxyLogKnowledge says what each kind of proxy log line means and what to do.
var proxyLogKnowledge = map[envoyadmin.ProxyLogKind]struct {
	code    Code
	title   string
	meaning string
	fix     Fix
}{
	envoyadmin.ProxyLogConfigRejected: {CodeConfigRejected, "The proxy's log shows configuration it rejected",
		"Envoy rejects (NACKs) an xDS update it cannot apply and keeps serving the last version it accepted, so what the control plane sent since is not in effect. The log line carries Envoy's reason: usually an EnvoyFilter patch that no longer fits this Envoy release, two listeners or routes that clash, or a field this release does not know.",
		Fix{Summary: "Read Envoy's reason in the line, then find the resource that produced it (an EnvoyFilter, a Gateway or VirtualService clash) and fix or remove it.", Command: "istioctl proxy-status    # the proxy's CDS/LDS/RDS columns show the rejection\nkubectl get envoyfilters -A\nistioctl analyze -A"}},
	envoyadmin.ProxyLogFetchTimeout: {CodeConfigNotArrived, "The proxy waited for configuration or a secret that did not arrive",
		"Envoy asked its control plane for a resource and none came within the initial fetch timeout, or the secret it asked for does not exist. A listener or cluster that needs it stays warming and the traffic it serves fails. For a gateway's TLS secret (credentialName), the Secret is missing or in another namespace; for the workload certificate (\"default\", \"ROOTCA\"), the agent could not get it.",
		Fix{Summary: "For a gateway secret, create the Secret named by credentialName in the gateway's namespace; otherwise check that istiod pushes to this proxy.", Command: "kubectl get gateways.networking.istio.io -A -o yaml | grep credentialName\nistioctl proxy-status"}},
	envoyadmin.ProxyLogNotReady: {CodeSidecarNotReady, "The proxy reports itself not ready",
		"istio-agent answers the readiness probe with a failure until Envoy has received its configuration (listeners and clusters) from istiod and is live; the pod stays out of its Services' endpoints meanwhile. \"config not received from Pilot\" means istiod never sent it: istiod unreachable, overloaded, or refusing the proxy's identity.",
		Fix{Summary: "Check that istiod is up and reachable from the pod, and read the agent's log above the readiness line for why no configuration came.", Command: "kubectl get pods -n istio-system -l app=istiod\nistioctl proxy-status"}},
	envoyadmin.ProxyLogControlPlane: {CodeControlPlaneUnreachable, "The proxy cannot reach its control plane",
		"The xDS stream to istiod (port 15012) failed or could not be opened: the proxy keeps its last configuration and gets no updates, and a new proxy never becomes ready. Usual causes: istiod down or overloaded, a NetworkPolicy or firewall blocking 15012, a wrong discoveryAddress, or a certificate istiod does not accept.",
		Fix{Summary: "Check istiod's pods and Service and that port 15012 is reachable from the pod's namespace.", Command: "kubectl get pods,svc -n istio-system -l app=istiod\nkubectl get networkpolicies -A"}},
	envoyadmin.ProxyLogCertificate: {CodeCertUnobtainable, "The proxy's agent cannot get its workload certificate",
		"istio-agent asks istiod (or the configured CA) to sign the workload's certificate over port 15012; the request failed, so the proxy has no certificate to serve mTLS with and does not become ready.",
		Fix{Summary: "Check that istiod's CA is healthy and reachable on 15012, and, with a custom CA, that it signs the agent's requests.", Command: "kubectl logs -n istio-system deploy/istiod | grep -iE 'ca|csr|sign'"}},
	envoyadmin.ProxyLogCertExpired: {CodeCertExpired, "The proxy's log shows an expired certificate",
		"A certificate in a TLS handshake had expired: the workload's own (its rotation stopped), a peer's, or a root or intermediate of the mesh's CA (a plug-in CA certificate past its date).",
		Fix{Summary: "Find which certificate expired and rotate it: for the mesh CA, renew the cacerts Secret and restart istiod, then the workloads.", Command: "istioctl proxy-config secret <pod> -n <namespace>\nkubectl get secret cacerts -n istio-system -o jsonpath='{.data.ca-cert\\.pem}' | base64 -d | openssl x509 -noout -enddate"}},
	envoyadmin.ProxyLogCrashed: {CodeProxyCrashed, "The proxy crashed or was killed",
		"Envoy stopped: an assertion or a signal ended it, or the kernel killed it (\"signal: killed\" is usually the OOM killer at the container's memory limit). Until it is back the pod's traffic fails, and a proxy that keeps dying restarts in a loop.",
		Fix{Summary: "Read the container's last state and previous log; for an OOM kill raise the proxy's memory limit (sidecar.istio.io/proxyMemoryLimit) and narrow its configuration with a Sidecar resource.", Command: "kubectl get pod <pod> -n <namespace> -o jsonpath='{.status.containerStatuses[?(@.name==\"istio-proxy\")].lastState}'\nkubectl logs <pod> -n <namespace> -c istio-proxy --previous | tail -50"}},
	envoyadmin.ProxyLogFileHandles: {CodeFileHandlesFull, "The proxy ran out of file descriptors (Too many open files)",
		"Envoy could not accept or open a connection because the process reached its open-file limit: every connection and listener takes a descriptor. Envoy aborts on a failed accept, so the proxy restarts and its traffic fails meanwhile.",
		Fix{Summary: "Raise the container's open-file limit (the container runtime's LimitNOFILE or ulimit -n) and the node's fs.file-max, and look for connections that leak (many idle upstream connections).", Command: "kubectl exec <pod> -n <namespace> -c istio-proxy -- sh -c 'ulimit -n; ls /proc/1/fd | wc -l'"}},
}

// proxyLogOrder ranks the kinds: the cause before its consequences (a proxy that cannot reach
// istiod is not ready; a rejected listener is why traffic fails).
var proxyLogOrder = []envoyadmin.ProxyLogKind{
	envoyadmin.ProxyLogFileHandles, envoyadmin.ProxyLogCrashed,
	envoyadmin.ProxyLogConfigRejected, envoyadmin.ProxyLogCertExpired, envoyadmin.ProxyLogCertificate,
	envoyadmin.ProxyLogControlPlane, envoyadmin.ProxyLogFetchTimeout, envoyadmin.ProxyLogNotReady,
}

// proxyLogFindings makes one finding per kind of line, quoting the first lines of each.
func proxyLogFindings(events []envoyadmin.ProxyLogEvent, proxy string, source func(line int) string) []Finding {
	byKind := map[envoyadmin.ProxyLogKind][]envoyadmin.ProxyLogEvent{}
	for _, e := range events {
		byKind[e.Kind] = append(byKind[e.Kind], e)
	}
	var out []Finding
	for rank, kind := range proxyLogOrder {
		evs := byKind[kind]
		if len(evs) == 0 {
			continue
		}
		k := proxyLogKnowledge[kind]
		f := NewFinding(k.code, Subject{Kind: SubjectProxy, Name: proxy})
		f.Title = k.title
		var resources []string
		for _, e := range evs {
			if e.Resource != "" && !slices.Contains(resources, e.Resource) {
				resources = append(resources, e.Resource)
			}
		}
		if len(resources) > 0 {
			f.Title += " (" + strings.Join(resources, ", ") + ")"
		}
		f.Evidence = append(f.Evidence, Evidence{Label: "proxy log lines of this kind", Value: float64(len(evs)), Unit: UnitCount, Source: source(evs[0].Line)})
		for i, e := range evs {
			if i == maxQuotedLogLines {
				break
			}
			f.Evidence = append(f.Evidence, Evidence{Label: "proxy log", Text: e.Text, Source: source(e.Line)})
		}
		f.Explanation = k.meaning
		f.Fix = k.fix
		// Later kinds are often consequences of earlier ones: keep them, one step lower.
		if rank > 0 && len(out) > 0 && f.Severity == SeverityError {
			f.Severity = SeverityWarning
		}
		out = append(out, f)
	}
	return out
}
