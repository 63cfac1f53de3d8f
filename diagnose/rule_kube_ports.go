package diagnose

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// SubjectService is a Kubernetes Service a finding is about ("default/reviews").
const SubjectService SubjectKind = "service"

// istioPortProtocols are the port-name prefixes (and appProtocol values) from which Istio takes
// a port's protocol (its "protocol selection" docs): "http", "http-web", "grpc-api"...
var istioPortProtocols = []string{"http", "http2", "https", "grpc", "grpc-web", "h2c", "tcp", "tls", "mongo", "mysql", "redis", "udp"}

// ServicePortProtocolRule finds ports of the pod's Services that declare no protocol, neither
// appProtocol nor a protocol prefix in the port's name, so Istio has to sniff the protocol or
// treats the port as TCP.
type ServicePortProtocolRule struct{}

// Meta describes the rule.
func (ServicePortProtocolRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "ServicePortProtocolRule",
		Description: "Finds ports of the Services selecting the pod that declare no protocol (no appProtocol, no http-/grpc-/tcp- name prefix).",
		Codes:       []Code{CodeUndeclaredProtocol},
		Needs:       []Input{InputServices},
	}
}

// Check runs the rule.
func (ServicePortProtocolRule) Check(s *Snapshot) []Finding {
	var out []Finding
	for i := range s.Services {
		svc := &s.Services[i]
		var bare []string
		var ports []corev1.ServicePort
		for _, p := range svc.Spec.Ports {
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP || declaredProtocol(p) != "" {
				continue
			}
			bare = append(bare, portText(p))
			ports = append(ports, p)
		}
		if len(bare) == 0 {
			continue
		}
		ref := svc.Namespace + "/" + svc.Name
		f := NewFinding(CodeUndeclaredProtocol, Subject{Kind: SubjectService, Name: ref})
		f.Title = fmt.Sprintf("Service %s declares no protocol on port %s: Istio sniffs it or treats it as TCP", ref, strings.Join(bare, ", "))
		f.Evidence = []Evidence{{Label: "ports without appProtocol or protocol name prefix", Text: strings.Join(bare, ", "), Source: FileServices + " " + ref + " spec.ports"}}
		f.Explanation = "Istio takes a port's protocol from its appProtocol, or from its name's prefix (http-, grpc-, tcp-...). Without either it sniffs the first bytes of each connection: that adds a delay for protocols where the server speaks first (MySQL, SMTP), and if sniffing settles on TCP the proxy sees only bytes, so the port gets no HTTP routing, retries, timeouts or per-request metrics (istio_requests_total), and no access-log lines per request."
		var patch []string
		for _, p := range ports {
			patch = append(patch, fmt.Sprintf("  - name: %s\n    port: %d\n    appProtocol: http    # or grpc, http2, tcp: what the port really serves", orDefault(p.Name, "http"), p.Port))
		}
		f.Fix = Fix{
			Summary: fmt.Sprintf("Declare each port's protocol on Service %s with appProtocol (or a name prefix such as http-); a strategic merge patch keyed by port keeps the other fields.", ref),
			Command: fmt.Sprintf("kubectl patch service %s -n %s --patch-file ports.yaml    # the YAML below, saved", svc.Name, svc.Namespace),
			YAML:    "spec:\n  ports:\n" + strings.Join(patch, "\n"),
		}
		out = append(out, f)
	}
	return out
}

// declaredProtocol returns the protocol a port declares to Istio: its appProtocol, else the
// prefix of its name ("http" for "http-web"), else "".
func declaredProtocol(p corev1.ServicePort) string {
	if p.AppProtocol != nil && *p.AppProtocol != "" {
		return *p.AppProtocol
	}
	prefix, _, _ := strings.Cut(strings.ToLower(p.Name), "-")
	for _, known := range istioPortProtocols {
		if prefix == known {
			return known
		}
	}
	return ""
}

func portText(p corev1.ServicePort) string {
	if p.Name == "" {
		return fmt.Sprint(p.Port)
	}
	return fmt.Sprintf("%d (%s)", p.Port, p.Name)
}
