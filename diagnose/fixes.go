package diagnose

import (
	"fmt"
	"strings"
)

// What fixes print: commands run against the diagnosed pod and its upstreams, and the YAML a
// user applies. Names from evidence reach them only checked (names.go) or quoted (shellQuote).

// podRef returns the namespace and name of the diagnosed pod, or placeholders.
func (s *Snapshot) podRef() (ns, pod string) {
	ns, pod = s.Meta.Namespace, s.Meta.Pod
	if s.Config != nil {
		ns = orDefault(ns, s.Config.Proxy.Namespace)
		pod = orDefault(pod, s.Config.Proxy.PodName)
	}
	if s.Pod != nil {
		ns = orDefault(ns, s.Pod.Namespace)
		pod = orDefault(pod, s.Pod.Name)
	}
	return orDefault(ns, "<namespace>"), orDefault(pod, "<pod>")
}

// proxyCommand is a command run in the pod's istio-proxy container.
func (s *Snapshot) proxyCommand(cmd string) string {
	ns, pod := s.podRef()
	return fmt.Sprintf("kubectl exec -n %s %s -c istio-proxy -- %s", ns, pod, cmd)
}

// proxyLogGrep is a command that shows the proxy's access-log lines with a pattern.
func (s *Snapshot) proxyLogGrep(pattern string) string {
	ns, pod := s.podRef()
	return fmt.Sprintf("kubectl logs -n %s %s -c istio-proxy | grep -E '%s'", ns, pod, pattern)
}

// destinationRuleFix renders a DestinationRule for the cluster's service, or "" when the
// cluster is not an Istio service cluster (a DestinationRule could not select it).
func destinationRuleFix(cluster, trafficPolicy string) string {
	host := serviceHost(cluster)
	if host == "" {
		return ""
	}
	return "# If a DestinationRule for " + host + " exists, merge this into it: applying this one replaces a rule of the same name.\n" +
		DestinationRuleYAML(host, trafficPolicy)
}

// endpointsCommand lists a service's endpoints, with the pods behind them.
func endpointsCommand(cluster string) string {
	host := serviceHost(cluster)
	if host == "" {
		return ""
	}
	name, ns := hostNameNamespace(host)
	if ns == "" {
		return ""
	}
	return fmt.Sprintf("kubectl get endpointslices -n %s -l kubernetes.io/service-name=%s -o wide", ns, name)
}

// podByIPCommand finds the pods behind host addresses ("10.0.0.7:8080").
func podByIPCommand(addrs []string) string {
	var parts []string
	for i, a := range addrs {
		if i == maxListedHosts {
			break
		}
		ip := a
		if i := strings.LastIndexByte(a, ':'); i > 0 {
			ip = strings.Trim(a[:i], "[]")
		}
		parts = append(parts, fmt.Sprintf("kubectl get pods -A -o wide --field-selector status.podIP=%s", ip))
	}
	return strings.Join(parts, "\n")
}

// DestinationRuleYAML renders a DestinationRule for a service host with the given trafficPolicy
// body (YAML indented by four spaces, under trafficPolicy:), as a fix a user can apply.
func DestinationRuleYAML(host, trafficPolicy string) string {
	name, ns := hostNameNamespace(host)
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: %s\n", name)
	if ns != "" {
		fmt.Fprintf(&b, "  namespace: %s\n", ns)
	}
	fmt.Fprintf(&b, "spec:\n  host: %s\n  trafficPolicy:\n%s", yamlHost(host), strings.TrimRight(trafficPolicy, "\n"))
	return b.String()
}

// VirtualServiceYAML renders a VirtualService for a service host whose single HTTP route has the
// given body (YAML indented by four spaces, under the route's "- " item). Its catch-all route
// would replace every route of an existing VirtualService of the same name, so it opens with a
// comment that says to merge the fields into the existing routes instead.
func VirtualServiceYAML(host, httpRoute string) string {
	name, ns := hostNameNamespace(host)
	var b strings.Builder
	host = yamlHost(host)
	fmt.Fprintf(&b, "# If a VirtualService for %s exists, merge these fields into its http routes instead: applying this one replaces a VirtualService of the same name, every route included, and conflicts with one of another name.\n", host)
	fmt.Fprintf(&b, "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: %s\n", name)
	if ns != "" {
		fmt.Fprintf(&b, "  namespace: %s\n", ns)
	}
	fmt.Fprintf(&b, "spec:\n  hosts:\n  - %s\n  http:\n  - route:\n    - destination:\n        host: %s\n%s", host, host, strings.TrimRight(httpRoute, "\n"))
	return b.String()
}

// workloadRef names the controller of the diagnosed pod as kubectl accepts it
// ("deployment/reviews-v2"), from the pod's owner and its pod-template-hash label; a placeholder
// when unknown.
func (s *Snapshot) workloadRef() string {
	if s.Pod != nil {
		for _, o := range s.Pod.OwnerReferences {
			switch o.Kind {
			case "ReplicaSet":
				if h := s.Pod.Labels["pod-template-hash"]; h != "" && strings.HasSuffix(o.Name, "-"+h) {
					return "deployment/" + strings.TrimSuffix(o.Name, "-"+h)
				}
			case "StatefulSet", "DaemonSet":
				return strings.ToLower(o.Kind) + "/" + o.Name
			}
		}
	}
	return "deployment/<name>"
}

// podTemplateAnnotationsYAML is a patch setting annotations on a controller's pod template,
// for `kubectl patch --patch-file`. Values may span lines.
func podTemplateAnnotationsYAML(annotations map[string]string) string {
	var b strings.Builder
	b.WriteString("spec:\n  template:\n    metadata:\n      annotations:\n")
	for _, k := range sortedKeys(annotations) {
		v := annotations[k]
		if strings.Contains(v, "\n") {
			fmt.Fprintf(&b, "        %s: |\n", k)
			for _, line := range strings.Split(strings.TrimRight(v, "\n"), "\n") {
				fmt.Fprintf(&b, "          %s\n", line)
			}
			continue
		}
		fmt.Fprintf(&b, "        %s: %q\n", k, v)
	}
	return b.String()
}

// appContainer names the pod's application container (the first that is not istio-proxy), or a
// placeholder.
func (s *Snapshot) appContainer() string {
	if s.Pod != nil {
		if c := s.Pod.Annotations["kubectl.kubernetes.io/default-container"]; c != "" && c != "istio-proxy" {
			return c
		}
		for _, c := range s.Pod.Spec.Containers {
			if c.Name != "istio-proxy" {
				return c.Name
			}
		}
	}
	return "<app-container>"
}

// shellQuote quotes a word for a POSIX shell: names that came from evidence (cluster names,
// pod names) go into printed commands only this way.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/|@%+=,") == "" && !strings.ContainsAny(s, "|") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
