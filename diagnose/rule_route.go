package diagnose

import (
	"fmt"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// NoRouteRule finds requests that match no route (MESH0701, 404 NR), traffic Istio drops to
// BlackHoleCluster (MESH0701), and routes to clusters the proxy does not have (MESH0702, 503 NC).
type NoRouteRule struct{}

// Meta describes the rule.
func (NoRouteRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "NoRouteRule",
		Description: "Requests that match no route (NR, 404), traffic dropped to BlackHoleCluster, and routes to clusters the proxy lacks (NC, 503).",
		Codes:       []Code{CodeNoRoute, CodeNoCluster},
		AnyOf:       []Input{InputStats, InputAccessLog, InputConfig},
	}
}

// Check runs the rule.
func (NoRouteRule) Check(s *Snapshot) []Finding {
	out := noRouteLogFindings(s)
	if len(out) == 0 {
		out = append(out, routerStatFindings(s, "_no_route", CodeNoRoute, nil)...)
	}
	if f, ok := blackHoleFinding(s); ok {
		out = append(out, f)
	}
	nc, tied, logged := missingClusterFindings(s)
	if !logged {
		// NC lines say which requests failed, and the counters would count them again; without
		// them, the counters not tied to a missing cluster of the config are findings of their own.
		nc = append(nc, routerStatFindings(s, "_no_cluster", CodeNoCluster, tied)...)
	}
	return append(out, nc...)
}

func isRouteNotFound(e *envoyadmin.AccessLogEntry) bool {
	b := detailsBase(e)
	return b == "route_not_found" || (HasFlag(e, "NR") && b != "filter_chain_not_found")
}

// strictInbound reports whether an inbound listener of the config requires mTLS.
func strictInbound(cfg *envoyadmin.ConfigSummary) bool {
	for _, l := range cfg.Listeners {
		if l.Inbound && l.MTLSMode == "STRICT" {
			return true
		}
	}
	return false
}

// noRouteLogFindings reports NR access-log lines: one finding per Host header that found no
// route, and one for connections that found no filter chain. The latter are the MTLSRule's when
// the pod may be STRICT (plaintext callers refused, MESH0802), so they are reported here only
// when the config dump shows no STRICT inbound listener.
func noRouteLogFindings(s *Snapshot) []Finding {
	byHost := map[string][]envoyadmin.AccessLogEntry{}
	for _, e := range s.LogEntries(isRouteNotFound) {
		byHost[orDefault(strings.TrimSpace(e.Authority), "-")] = append(byHost[orDefault(strings.TrimSpace(e.Authority), "-")], e)
	}
	var out []Finding
	for _, a := range sortedKeys(byHost) {
		out = append(out, routeNotFoundFinding(s, a, byHost[a]))
	}
	if s.Config == nil || strictInbound(s.Config) {
		return out
	}
	fc := s.LogEntries(func(e *envoyadmin.AccessLogEntry) bool { return detailsBase(e) == "filter_chain_not_found" })
	if len(fc) == 0 {
		return out
	}
	g := signal{logs: fc}
	f := NewFinding(CodeNoRoute, Subject{Kind: SubjectListener, Name: "inbound filter chains"})
	f.Title = "Connections match no filter chain of the listener (NR, filter_chain_not_found)"
	f.Severity, f.Impact = g.severity(f.Severity), g.impact(s)
	f.Evidence = []Evidence{s.logEvidence("access-log lines with filter_chain_not_found", len(fc)),
		{Label: "inbound listeners requiring mTLS (STRICT)", Value: 0, Unit: UnitCount, Source: FileConfigDump + " inbound listener filter chains"}}
	f.Explanation = "Connections arrived on a port for which the listener has no filter chain, so the proxy closed them before reading a request. The config shows no STRICT mTLS, so it is not plaintext refused by STRICT: the connections came to a port the pod does not declare (a containerPort or Service port missing), or with a protocol the port's chains do not take."
	f.Fix = Fix{Summary: "Declare the port the callers use in the pod's containerPorts and the Service, with its protocol (port name or appProtocol), so the sidecar builds a chain for it.", Command: s.proxyLogGrep("filter_chain_not_found")}
	return append(out, f)
}

// virtualHostsFor returns the names of virtual hosts whose domains match a Host header.
func virtualHostsFor(cfg *envoyadmin.ConfigSummary, authority string) []string {
	host := authority
	if i := strings.LastIndexByte(authority, ':'); i > 0 && !strings.Contains(authority[i:], "]") {
		host = authority[:i]
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range cfg.Routes {
		for _, d := range r.Domains {
			d = strings.ToLower(d)
			match := d == strings.ToLower(authority) || d == strings.ToLower(host) ||
				(strings.HasPrefix(d, "*") && d != "*" && strings.HasSuffix(strings.ToLower(host), d[1:]))
			if match && !seen[r.VirtualHost] {
				seen[r.VirtualHost] = true
				out = append(out, r.VirtualHost)
			}
		}
	}
	return out
}

func routeNotFoundFinding(s *Snapshot, authority string, lines []envoyadmin.AccessLogEntry) Finding {
	g := signal{logs: lines}
	f := NewFinding(CodeNoRoute, Subject{Kind: SubjectRoute, Name: authority})
	f.Title = fmt.Sprintf("Requests for %s match no route (NR, 404)", authority)
	f.Severity, f.Impact = g.severity(f.Severity), g.impact(s)
	f.Evidence = []Evidence{s.logEvidence("access-log lines with NR / route_not_found for Host "+authority, len(lines))}
	paths := map[string]bool{}
	for _, e := range lines {
		if e.Path != "" && len(paths) < maxListedRoutes {
			paths[e.Path] = true
		}
	}
	if len(paths) > 0 {
		f.Evidence = append(f.Evidence, Evidence{Label: "paths of those requests", Text: strings.Join(sortedKeys(paths), ", "), Source: "access.log path"})
	}
	ns, pod := s.podRef()
	routesCmd := fmt.Sprintf("istioctl proxy-config routes -n %s %s", ns, pod)
	if s.Config == nil {
		f.Explanation = fmt.Sprintf("The proxy answered 404 NR itself: requests for %s matched no route. Either no virtual host lists that host (a VirtualService or Gateway without it, a Service that does not expose that port, a Sidecar resource that hides it), or a VirtualService for it has match conditions and no default route. The config dump would tell which.", authority)
		f.Fix = Fix{Summary: "List the proxy's routes and look for the host; add it to the VirtualService's hosts, or add a route without match conditions as the VirtualService's last route.", Command: routesCmd}
		return f
	}
	vhosts := virtualHostsFor(s.Config, authority)
	f.Evidence = append(f.Evidence, Evidence{Label: "virtual hosts whose domains match " + authority, Value: float64(len(vhosts)), Unit: UnitCount, Source: FileConfigDump + " route configurations, virtual host domains"})
	if len(vhosts) > 0 {
		vh := vhosts[0]
		f.Explanation = fmt.Sprintf("The proxy knows the host (virtual host %s), but none of its routes matched these requests' path, method or headers, so it answered 404 NR itself: a VirtualService for that host has match conditions and no default route.", vh)
		f.Fix = Fix{Summary: fmt.Sprintf("Add a route without match conditions as the last http route of the VirtualService for %s, or widen the matches to these paths.", vh), Command: routesCmd}
		if host, _, _ := strings.Cut(vh, ":"); strings.Contains(host, ".") {
			f.Fix.YAML = VirtualServiceYAML(host, "")
		}
		return f
	}
	f.Explanation = fmt.Sprintf("No virtual host of this proxy lists %s, and the route configuration that took the requests has no catch-all, so the proxy answered 404 NR. At a gateway: no VirtualService bound to the gateway lists the host. In a sidecar: the host is not a Service or ServiceEntry on that port, or a Sidecar resource's egress hides it.", authority)
	f.Fix = Fix{Summary: fmt.Sprintf("Add %s to the hosts of the VirtualService that should serve it (and its gateways: for a gateway), or declare the service on that port; check the port's name or appProtocol says HTTP.", authority), Command: routesCmd}
	return f
}

// routerStatFindings reports http.<prefix>.no_route or no_cluster counters, when the access log
// did not already say which requests, except those in skip (already in another finding).
func routerStatFindings(s *Snapshot, suffix string, code Code, skip map[string]bool) []Finding {
	last := s.latestStats()
	if last == nil {
		return nil
	}
	var out []Finding
	for _, k := range sortedKeys(last.Stats) {
		p, ok := strings.CutSuffix(k, suffix)
		if !ok || !strings.HasPrefix(p, "http_") || skip[k] {
			continue
		}
		prefix := strings.TrimPrefix(p, "http_")
		if prefix == "admin" || prefix == "stats" || prefix == "agent" {
			continue
		}
		m, ok := s.Counter(k)
		g := signal{m: m, ok: ok}
		if !g.counted() {
			continue
		}
		f := NewFinding(code, Subject{Kind: SubjectListener, Name: "http." + prefix})
		f.Severity, f.Impact = g.severity(f.Severity), g.impact(s)
		ns, pod := s.podRef()
		if code == CodeNoRoute {
			f.Title = fmt.Sprintf("Requests on http.%s match no route (NR, 404)", prefix)
			f.Evidence = []Evidence{m.Evidence("requests with no route (no_route)")}
			f.Explanation = "The HTTP connection manager answered 404 NR itself: requests matched no virtual host or no route. The stats do not say which hosts; the access log's NR lines would (their Host header)."
		} else {
			f.Title = fmt.Sprintf("Requests on http.%s route to a cluster that does not exist (NC, 503)", prefix)
			f.Evidence = []Evidence{m.Evidence("requests routed to a missing cluster (no_cluster)")}
			f.Explanation = "Routes sent requests to a cluster the proxy does not have, usually a subset a VirtualService names before a DestinationRule defines it. The config dump would name the cluster."
			if missing := configMissingClusters(s); len(missing) > 0 {
				f.Explanation = "Routes sent requests to a cluster the proxy does not have, usually a subset a VirtualService names before a DestinationRule defines it. The config dump's routes name these clusters it lacks, though none could be tied to this counter's listener: " + strings.Join(sortedKeys(missing), ", ") + "."
			}
		}
		f.Fix = Fix{Summary: "List the proxy's routes and the clusters they name; every cluster must exist and every host must have a route.", Command: fmt.Sprintf("istioctl proxy-config routes -n %s %s -o json", ns, pod)}
		out = append(out, f)
	}
	return out
}

// blackHoleFinding reports traffic Istio sent to BlackHoleCluster: with outboundTrafficPolicy
// REGISTRY_ONLY, calls to hosts no Service or ServiceEntry declares are dropped there (HTTP gets
// a 502 from the block_all route, TCP a closed connection).
func blackHoleFinding(s *Snapshot) (Finding, bool) {
	g := s.clusterSignal("BlackHoleCluster", "upstream_cx_none_healthy", nil)
	g.logs = s.LogEntries(func(e *envoyadmin.AccessLogEntry) bool {
		return e.UpstreamCluster == "BlackHoleCluster" || e.RouteName == "block_all"
	})
	if !g.fires() {
		return Finding{}, false
	}
	f := NewFinding(CodeNoRoute, ClusterSubject("BlackHoleCluster"))
	f.Title = "Calls to destinations outside the service registry are dropped (BlackHoleCluster)"
	f.Severity = lowerSeverity(g.severity(f.Severity)) // the policy works as configured; the call may be unwanted
	f.Impact = g.impact(s)
	f.Evidence = g.evidence(s, "connections dropped (BlackHoleCluster upstream_cx_none_healthy)", "access-log lines to BlackHoleCluster or the block_all route")
	hosts := map[string]bool{}
	for _, e := range g.logs {
		if a := strings.TrimSpace(e.Authority); a != "" && a != "-" && len(hosts) < maxListedHosts {
			hosts[a] = true
		}
	}
	if len(hosts) > 0 {
		f.Evidence = append(f.Evidence, Evidence{Label: "hosts called", Text: strings.Join(sortedKeys(hosts), ", "), Source: "access.log authority"})
	}
	f.Explanation = "The outbound traffic policy is REGISTRY_ONLY (mesh-wide or in a Sidecar resource), so calls to hosts that no Service or ServiceEntry declares go to BlackHoleCluster: HTTP requests get a 502 from the block_all route and TCP connections are closed. This is the policy working; if the application needs the destination, declare it."
	ns, _ := s.podRef()
	entryHosts := sortedKeys(hosts)
	if len(entryHosts) == 0 {
		entryHosts = []string{"<external host the application calls>"}
	}
	var yaml strings.Builder
	fmt.Fprintf(&yaml, "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: external-destinations\n  namespace: %s\nspec:\n  hosts:\n", ns)
	for _, h := range entryHosts {
		h, _, _ = strings.Cut(h, ":")
		fmt.Fprintf(&yaml, "  - %s\n", h)
	}
	yaml.WriteString("  location: MESH_EXTERNAL\n  resolution: DNS\n  ports:\n  - number: 443   # the port the application calls\n    name: tls\n    protocol: TLS")
	f.Fix = Fix{Summary: "Declare the destinations the application needs with a ServiceEntry (set the port and protocol it really uses).", YAML: yaml.String(), Command: s.proxyLogGrep("BlackHoleCluster|block_all")}
	return f, true
}
