package collect

import (
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Permission is one thing the live diagnosis reads, the RBAC rule that allows it, and what the
// diagnosis loses without it.
type Permission struct {
	Group, Resource, Verb string
	// ClusterScoped permissions need a ClusterRoleBinding; the others work per namespace
	// through a RoleBinding to the ClusterRole.
	ClusterScoped bool
	// Why says what the diagnosis reads with it, and what it goes without when refused.
	Why string
}

// Permissions lists every request the live commands make, grouped as RBAC rules are.
func Permissions() []Permission {
	return []Permission{
		{"", "pods", "get", false, "read the pod: its sidecar, status, resources and QoS (required)"},
		{"", "pods", "list", false, "find the pods of a namespace, a selector or a workload (required for sweeps)"},
		// Port-forward and exec go over a WebSocket first (an upgraded GET, which the API server
		// authorizes as get) and over SPDY when the server does not take WebSockets (a POST,
		// authorized as create), as kubectl 1.31 and later do: a role needs both verbs.
		{"", "pods/portforward", "get", false, "read the sidecar's Envoy admin API on port 15000 (stats, config, clusters, certificates) over a WebSocket"},
		{"", "pods/portforward", "create", false, "the same over SPDY, for API servers without WebSocket streaming"},
		{"", "pods/log", "get", false, "read the sidecar's access log (response flags of failed requests)"},
		{"", "pods/exec", "get", false, "read node counters from inside the sidecar over a WebSocket: CPU steal, iowait, disk latency, throttling, conntrack, sysctls"},
		{"", "pods/exec", "create", false, "the same over SPDY, for API servers without WebSocket streaming"},
		{"", "pods/ephemeralcontainers", "patch", false, "start a debug container for the node counters when the sidecar has no shell tools"},
		{"", "events", "list", false, "explain a sidecar that is not ready (probe failures, OOM kills)"},
		{"", "services", "list", false, "the Services of the pod and its upstreams, and their port protocols"},
		{"", "services", "get", false, "resolve svc/NAME to its pods, and follow the hop to the slowest upstream's pods"},
		{"discovery.k8s.io", "endpointslices", "list", false, "whether upstream Services have ready endpoints"},
		{"networking.istio.io", "destinationrules", "list", false, "the TLS mode, connection pools and outlier detection that apply to upstreams"},
		{"networking.istio.io", "virtualservices", "list", false, "the timeouts and retries of the routes"},
		{"security.istio.io", "peerauthentications", "list", false, "the mTLS mode servers require"},
		{"apps", "deployments", "get", false, "resolve deploy/NAME to its pods"},
		{"apps", "statefulsets", "get", false, "resolve sts/NAME to its pods"},
		{"apps", "daemonsets", "get", false, "resolve ds/NAME to its pods"},
		{"apps", "replicasets", "get", false, "resolve rs/NAME to its pods"},
		{"batch", "jobs", "get", false, "resolve job/NAME to its pods"},
		{"", "nodes/proxy", "get", true, "the kubelet's cAdvisor metrics: CPU throttling of the app container"},
	}
}

// Roles returns the ClusterRoles that grant Permissions: name for what works per namespace
// (bind it with a RoleBinding in each namespace to diagnose, or a ClusterRoleBinding for -A),
// and name+"-nodes" for the cluster-scoped reads.
func Roles(name string) (namespaced, cluster *rbacv1.ClusterRole) {
	namespaced = clusterRole(name)
	cluster = clusterRole(name + "-nodes")
	for _, p := range Permissions() {
		r := namespaced
		if p.ClusterScoped {
			r = cluster
		}
		addRule(r, p)
	}
	return namespaced, cluster
}

func clusterRole(name string) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		TypeMeta: metaType("ClusterRole"),
		ObjectMeta: objectMeta(name, map[string]string{
			"app.kubernetes.io/name":       "kubectl-mesh",
			"app.kubernetes.io/managed-by": "kubectl-mesh",
		}),
	}
}

// addRule merges a permission into the role: one rule per API group and resource set with the
// same verbs, as RBAC tools print them.
func addRule(r *rbacv1.ClusterRole, p Permission) {
	for i := range r.Rules {
		rule := &r.Rules[i]
		if rule.APIGroups[0] == p.Group && len(rule.Resources) == 1 && rule.Resources[0] == p.Resource {
			rule.Verbs = append(rule.Verbs, p.Verb)
			return
		}
	}
	for i := range r.Rules {
		rule := &r.Rules[i]
		if rule.APIGroups[0] == p.Group && len(rule.Verbs) == 1 && rule.Verbs[0] == p.Verb && p.Resource != "pods" {
			rule.Resources = append(rule.Resources, p.Resource)
			return
		}
	}
	r.Rules = append(r.Rules, rbacv1.PolicyRule{APIGroups: []string{p.Group}, Resources: []string{p.Resource}, Verbs: []string{p.Verb}})
}

func metaType(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: kind}
}

func objectMeta(name string, labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Labels: labels}
}

// refusal words a request RBAC refused as one line naming the permission that allows it, and
// reports whether err was such a refusal. resource is "pods/log", "services"...; scope is
// the namespace ("" for cluster-scoped resources).
func refusal(err error, what, verb, resource, namespace string) (string, bool) {
	if err == nil || !Forbidden(err) {
		return "", false
	}
	where := "in namespace " + namespace
	check := fmt.Sprintf("kubectl auth can-i %s %s -n %s", verb, resource, namespace)
	if namespace == "" {
		where, check = "(cluster-scoped: a ClusterRole)", fmt.Sprintf("kubectl auth can-i %s %s", verb, resource)
	}
	return fmt.Sprintf("%s is forbidden: it needs %s on %s %s (`%s` checks it; `kubectl mesh rbac` prints the roles the tool needs)",
		what, verb, resource, where, check), true
}
