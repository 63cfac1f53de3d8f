package diagnose

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"istio.io/api/annotation"
	"istio.io/api/label"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/nodeinfo"
	"github.com/kubectl-mesh/kubectl-mesh/ztunnel"
)

func ambientPod(labels, annotations map[string]string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop", Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{NodeName: "node-a"}}
	for _, c := range append([]string{"web"}, containers...) {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c})
	}
	return p
}

func TestAmbientEnrollment(t *testing.T) {
	ambientNS := map[string]string{label.IoIstioDataplaneMode.Name: dataplaneAmbient}
	enabled := map[string]string{annotation.AmbientRedirection.Name: redirectionEnabled}
	tests := []struct {
		name     string
		nsLabels map[string]string
		pod      *corev1.Pod
		want     string // a phrase of the explanation, "" for no finding
	}{
		{"enrolled", ambientNS, ambientPod(nil, enabled), ""},
		{"left out", ambientNS, ambientPod(nil, nil), "never marked it redirected"},
		{"pending", nil, ambientPod(map[string]string{label.IoIstioDataplaneMode.Name: dataplaneAmbient}, map[string]string{annotation.AmbientRedirection.Name: redirectionPending}), "no ztunnel accepted the pod"},
		{"opted out", ambientNS, ambientPod(map[string]string{label.IoIstioDataplaneMode.Name: dataplaneNone}, nil), ""},
		{"a sidecar pod", ambientNS, ambientPod(nil, nil, "istio-proxy"), ""},
		{"not asked", map[string]string{"istio-injection": "enabled"}, ambientPod(nil, nil), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Snapshot{Pod: tc.pod, Meta: Meta{Namespace: "shop", Pod: "web-0", NamespaceLabels: tc.nsLabels}}
			fs := AmbientRule{}.Check(s)
			if tc.want == "" {
				if len(fs) != 0 {
					t.Errorf("findings %+v; want none", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].Code != string(CodeAmbientNotEnrolled) || !strings.Contains(fs[0].Explanation, tc.want) {
				t.Fatalf("findings %+v; want MESH1901 saying %q", fs, tc.want)
			}
			if !strings.Contains(fs[0].Fix.Command, "spec.nodeName=node-a") || !strings.Contains(fs[0].Fix.Command, "kubectl delete pod -n shop web-0") {
				t.Errorf("fix %q; want the node's agents and the pod's restart", fs[0].Fix.Command)
			}
		})
	}
}

func TestAmbientZtunnelLog(t *testing.T) {
	log := "2025-01-14T14:45:38.786219Z\tinfo\taccess\tconnection complete\tsrc.addr=10.0.0.9:4000 dst.addr=10.0.0.7:8080 direction=\"inbound\" bytes_sent=10 bytes_recv=20 duration=\"1ms\"\n" +
		"2025-01-14T14:45:39.786219Z\terror\taccess\tconnection complete\tsrc.addr=10.0.0.8:47328 dst.addr=10.0.0.7:8080 dst.workload=\"web-0\" dst.namespace=\"shop\" direction=\"inbound\" bytes_sent=0 bytes_recv=0 duration=\"0ms\" error=\"connection closed due to policy rejection: allow policies exist, but none allowed\"\n"
	events, known := ztunnelLines(log)
	s := &Snapshot{Pod: ambientPod(nil, map[string]string{annotation.AmbientRedirection.Name: redirectionEnabled}), Ztunnel: events, ZtunnelLines: len(known),
		Meta: Meta{NamespaceLabels: map[string]string{label.IoIstioDataplaneMode.Name: dataplaneAmbient}}}
	fs := AmbientRule{}.Check(s)
	if len(fs) != 1 || fs[0].Code != string(CodeAuthzDenied) || fs[0].Evidence[1].Source != "ztunnel.log line 2" {
		t.Fatalf("findings %+v; want the policy rejection of line 2", fs)
	}
	// The healthy line alone says nothing.
	events, known = ztunnelLines(strings.SplitN(log, "\n", 2)[0])
	s.Ztunnel, s.ZtunnelLines = events, len(known)
	if fs := (AmbientRule{}).Check(s); len(fs) != 0 || s.ZtunnelLines != 1 {
		t.Errorf("findings %+v from a healthy line", fs)
	}
}

func TestAmbientWaypoint(t *testing.T) {
	enrolled := map[string]string{annotation.AmbientRedirection.Name: redirectionEnabled}
	waypoint := func(name, status, reason string) Waypoint {
		w := Waypoint{TypeMeta: metav1.TypeMeta{APIVersion: "gateway.networking.k8s.io/v1", Kind: "Gateway"}, ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"}}
		w.Spec.GatewayClassName = "istio-waypoint"
		if status != "" {
			w.Status.Conditions = []metav1.Condition{{Type: "Programmed", Status: metav1.ConditionStatus(status), Reason: reason, Message: "from istiod"}}
		}
		return w
	}
	ns := func(wp string) map[string]string {
		l := map[string]string{label.IoIstioDataplaneMode.Name: dataplaneAmbient}
		if wp != "" {
			l[label.IoIstioUseWaypoint.Name] = wp
		}
		return l
	}
	tests := []struct {
		name      string
		nsLabels  map[string]string
		services  []corev1.Service
		istio     *IstioConfig
		wantTitle string
	}{
		{"no waypoint", ns(""), nil, &IstioConfig{}, ""},
		{"opted out", ns("none"), nil, &IstioConfig{}, ""},
		{"waypoints not read", ns("waypoint"), nil, nil, ""},
		{"programmed", ns("waypoint"), nil, &IstioConfig{Waypoints: []Waypoint{waypoint("waypoint", "True", "Programmed")}}, ""},
		{"missing", ns("waypoint"), nil, &IstioConfig{}, "The waypoint shop/waypoint its traffic is bound to does not exist"},
		{"not programmed", ns("waypoint"), nil, &IstioConfig{Waypoints: []Waypoint{waypoint("waypoint", "False", "AddressNotUsable")}}, "is not programmed"},
		{"istiod silent", ns("waypoint"), nil, &IstioConfig{Waypoints: []Waypoint{waypoint("waypoint", "", "")}}, "is not programmed"},
		{"bound by its Service", ns(""), []corev1.Service{{ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{label.IoIstioUseWaypoint.Name: "web-wp"}}}},
			&IstioConfig{Waypoints: []Waypoint{waypoint("waypoint", "True", "Programmed")}}, "The waypoint shop/web-wp its traffic is bound to does not exist"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Snapshot{Pod: ambientPod(nil, enrolled), Services: tc.services, Istio: tc.istio, Meta: Meta{NamespaceLabels: tc.nsLabels}}
			fs := AmbientRule{}.Check(s)
			if tc.wantTitle == "" {
				if len(fs) != 0 {
					t.Errorf("findings %+v; want none", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].Code != string(CodeWaypointMissing) || !strings.Contains(fs[0].Title, tc.wantTitle) {
				t.Fatalf("findings %+v; want MESH1903 %q", fs, tc.wantTitle)
			}
		})
	}
}

func TestAmbientZtunnelView(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "testdata", "ztunnel", "istioctl-1.30.3-dump.json"))
	if err != nil {
		t.Fatal(err)
	}
	real, err := ztunnel.ParseConfigDump(b)
	if err != nil {
		t.Fatal(err)
	}
	healthy, err := ztunnel.ParseConfigDump([]byte(`{"workloads":[{"name":"web-0","namespace":"shop","protocol":"HBONE","node":"node-a","serviceAccount":"web"}],
		"certificates":[{"identity":"spiffe://cluster.local/ns/shop/sa/web","state":"Available"}],
		"workloadState":{"u1":{"state":"Up","info":{"name":"web-0","namespace":"shop"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	noCert, _ := ztunnel.ParseConfigDump([]byte(`{"workloads":[{"name":"web-0","namespace":"shop","protocol":"HBONE","node":"node-a","serviceAccount":"web"}],
		"certificates":[{"identity":"spiffe://cluster.local/ns/shop/sa/web","state":"Unavailable: signing gRPC error (The request does not have valid authentication credentials): request impersonation authentication failure"}],
		"workloadState":{"u1":{"state":"Up","info":{"name":"web-0","namespace":"shop"}}}}`))
	pod := func(ns, name, node string) *corev1.Pod {
		p := ambientPod(nil, map[string]string{annotation.AmbientRedirection.Name: redirectionEnabled})
		p.Namespace, p.Name, p.Spec.NodeName = ns, name, node
		return p
	}
	tests := []struct {
		name string
		dump *ztunnel.ConfigDump
		pod  *corev1.Pod
		code Code
		want string
	}{
		{"known, captured, proxy up, certificate", healthy, pod("shop", "web-0", "node-a"), "", ""},
		{"not in the workload list", real, pod("shop", "web-0", "ambient-worker2"), CodeZtunnelUnawareOfPod, "not in its workload list"},
		{"known as TCP", real, pod("httpbin", "httpbin-65975d4c6f-jr69n", "ambient-worker"), CodeZtunnelUnawareOfPod, "protocol is TCP"},
		{"no in-pod proxy", real, pod("bookinfo", "ratings-v1-6484c4d9bb-mdxm5", "ambient-worker2"), CodeAmbientNotEnrolled, "runs no proxy"},
		{"another node's dump", real, pod("bookinfo", "ratings-v1-6484c4d9bb-mdxm5", "node-b"), "", ""},
		{"no certificate", noCert, pod("shop", "web-0", "node-a"), CodeCertUnobtainable, "no certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Snapshot{Pod: tc.pod, ZtunnelDump: tc.dump, Meta: Meta{NamespaceLabels: map[string]string{label.IoIstioDataplaneMode.Name: dataplaneAmbient}}}
			fs := AmbientRule{}.Check(s)
			if tc.code == "" {
				if len(fs) != 0 {
					t.Errorf("findings %+v; want none", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].Code != string(tc.code) || !strings.Contains(fs[0].Title, tc.want) {
				t.Fatalf("findings %+v; want %s %q", fs, tc.code, tc.want)
			}
		})
	}
}

func TestAmbientL7Policy(t *testing.T) {
	policy := func(yaml string) AuthorizationPolicy {
		var c IstioConfig
		j, err := sigsyaml.YAMLToJSON([]byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Add(j); err != nil || len(c.AuthorizationPolicies) != 1 {
			t.Fatalf("%v %+v", err, c)
		}
		return c.AuthorizationPolicies[0]
	}
	// As Istio's docs write them (ambient, enforce-auth-policies).
	allowGet := policy(`{apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: productpage-viewer, namespace: shop},
  spec: {selector: {matchLabels: {app: web}}, action: ALLOW, rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/sleep]}}], to: [{operation: {methods: [GET]}}]}]}}`)
	denyPaths := policy(`{apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: deny-admin, namespace: shop},
  spec: {action: DENY, rules: [{to: [{operation: {paths: [/admin]}}]}]}}`)
	denyMixed := policy(`{apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: deny-mixed, namespace: shop},
  spec: {action: DENY, rules: [{to: [{operation: {ports: ["8080"], paths: [/admin]}}]}]}}`)
	atWaypoint := policy(`{apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: at-waypoint, namespace: shop},
  spec: {targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}], action: ALLOW, rules: [{to: [{operation: {methods: [GET]}}]}]}}`)
	l4 := policy(`{apiVersion: security.istio.io/v1, kind: AuthorizationPolicy, metadata: {name: l4, namespace: shop},
  spec: {selector: {matchLabels: {app: web}}, action: ALLOW, rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/sleep]}}]}]}}`)
	elsewhere := allowGet
	elsewhere.Namespace = "other"
	pod := ambientPod(map[string]string{"app": "web"}, map[string]string{annotation.AmbientRedirection.Name: redirectionEnabled})
	sidecar := ambientPod(map[string]string{"app": "web"}, nil, "istio-proxy")
	tests := []struct {
		name     string
		pod      *corev1.Pod
		policy   AuthorizationPolicy
		severity Severity
		want     string
	}{
		{"ALLOW with methods", pod, allowGet, SeverityError, "allows less than it says"},
		{"DENY of paths only", pod, denyPaths, SeverityWarning, "denies nothing"},
		{"DENY of a port and paths", pod, denyMixed, SeverityError, "refuses more than it says"},
		{"bound to a waypoint", pod, atWaypoint, "", ""},
		{"L4 only", pod, l4, "", ""},
		{"another namespace's", pod, elsewhere, "", ""},
		{"a sidecar pod", sidecar, allowGet, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Snapshot{Pod: tc.pod, Istio: &IstioConfig{AuthorizationPolicies: []AuthorizationPolicy{tc.policy}}}
			fs := l7PolicyFindings(s)
			if tc.want == "" {
				if len(fs) != 0 {
					t.Errorf("findings %+v; want none", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].Code != string(CodeL7PolicyAtZtunnel) || fs[0].Severity != tc.severity || !strings.Contains(fs[0].Explanation, tc.want) {
				t.Fatalf("findings %+v; want MESH1905 %s saying %q", fs, tc.severity, tc.want)
			}
		})
	}
}

func TestAmbientZtunnelMetrics(t *testing.T) {
	// ztunnel's exposition: OpenMetrics, a counter's TYPE without _total (its src/proxy/metrics.rs).
	series := func(flag string, n int) string {
		return fmt.Sprintf(`istio_tcp_connections_failed_total{reporter="destination",source_workload="sleep",source_workload_namespace="default",destination_workload="web",destination_workload_namespace="shop",request_protocol="tcp",response_flags=%q,connection_security_policy="mutual_tls"} %d`, flag, n)
	}
	sample := func(lines ...string) *envoyadmin.StatsSample {
		text := "# HELP istio_tcp_connections_failed The total number of TCP connections that failed to establish.\n# TYPE istio_tcp_connections_failed counter\n" + strings.Join(lines, "\n") + "\n# EOF\n"
		s, err := envoyadmin.ParseStatsPrometheus(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	web := ambientPod(nil, map[string]string{annotation.AmbientRedirection.Name: redirectionEnabled})
	yes := true
	web.OwnerReferences = []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-7d4f8b9c6", Controller: &yes}}
	base := Meta{NamespaceLabels: map[string]string{label.IoIstioDataplaneMode.Name: dataplaneAmbient}}

	t.Run("denied connections", func(t *testing.T) {
		iv := envoyadmin.NewStatsInterval(sample(series("DENY", 10), series("-", 500)), sample(series("DENY", 40), series("-", 900)), 10*time.Second)
		fs := AmbientRule{}.Check(&Snapshot{Pod: web, ZtunnelStats: iv, Meta: base})
		if len(fs) != 1 || fs[0].Code != string(CodeAuthzDenied) || fs[0].Severity != SeverityError || fs[0].Evidence[0].Value != 3 || fs[0].Evidence[0].Unit != UnitPerSecond {
			t.Fatalf("findings %+v; want MESH0804 at 3/s", fs)
		}
	})
	t.Run("the log's finding gets the rate", func(t *testing.T) {
		events, known := ztunnelLines(`2025-01-14T14:45:38Z	error	access	connection complete	src.addr=10.0.0.8:47328 dst.addr=10.0.0.7:8080 direction="inbound" error="connection closed due to policy rejection: allow policies exist, but none allowed"`)
		iv := envoyadmin.NewStatsInterval(sample(series("DENY", 10)), sample(series("DENY", 40)), 10*time.Second)
		fs := AmbientRule{}.Check(&Snapshot{Pod: web, ZtunnelStats: iv, Ztunnel: events, ZtunnelLines: len(known), Meta: base})
		if len(fs) != 1 || len(fs[0].Evidence) != 3 {
			t.Fatalf("findings %+v; want one finding with the log's and the metric's evidence", fs)
		}
	})
	t.Run("healthy and other workloads' failures", func(t *testing.T) {
		other := strings.Replace(series("NETWORK_POLICY", 5), `destination_workload="web"`, `destination_workload="api"`, 1)
		iv := envoyadmin.NewStatsInterval(sample(series("-", 500), other), sample(series("-", 900), strings.Replace(other, "} 5", "} 50", 1)), 10*time.Second)
		if fs := (AmbientRule{}).Check(&Snapshot{Pod: web, ZtunnelStats: iv, Meta: base}); len(fs) != 0 {
			t.Errorf("findings %+v; want none", fs)
		}
	})
}

func TestAmbientZtunnelThrottling(t *testing.T) {
	cad := func(periods, throttled float64) *nodeinfo.Cadvisor {
		return &nodeinfo.Cadvisor{Containers: map[string]*nodeinfo.ContainerCPU{"istio-proxy": {HasCFS: true, Periods: periods, Throttled: throttled}}}
	}
	pod := ambientPod(nil, map[string]string{annotation.AmbientRedirection.Name: redirectionEnabled})
	for _, tc := range []struct {
		name     string
		a, b     *nodeinfo.Cadvisor
		severity Severity
	}{
		{"throttled over the window", cad(1000, 100), cad(1100, 170), SeverityError},
		{"throttled since it started", cad(1000, 300), nil, SeverityWarning},
		{"not throttled", cad(1000, 0), cad(1100, 2), ""},
		{"no cAdvisor lines", nil, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Snapshot{Pod: pod, ZtunnelCadvisor: tc.a, ZtunnelCadvisor2: tc.b, NodeWindow: 10 * time.Second}
			fs := ztunnelThrottling(s)
			if tc.severity == "" {
				if len(fs) != 0 {
					t.Errorf("findings %+v; want none", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].Code != string(CodeProxyThrottled) || fs[0].Severity != tc.severity || !strings.HasPrefix(fs[0].Title, "ztunnel on the pod's node") {
				t.Fatalf("findings %+v; want MESH1403 %s", fs, tc.severity)
			}
		})
	}
}
