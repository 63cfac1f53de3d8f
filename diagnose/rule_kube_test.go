package diagnose

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func fxResources(reqCPU, reqMem, limCPU, limMem string) corev1.ResourceRequirements {
	r := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	set := func(l corev1.ResourceList, name corev1.ResourceName, v string) {
		if v != "" {
			l[name] = resource.MustParse(v)
		}
	}
	set(r.Requests, corev1.ResourceCPU, reqCPU)
	set(r.Requests, corev1.ResourceMemory, reqMem)
	set(r.Limits, corev1.ResourceCPU, limCPU)
	set(r.Limits, corev1.ResourceMemory, limMem)
	return r
}

func TestSidecarQoSRule(t *testing.T) {
	guaranteedApp := func(p *corev1.Pod, proxy *corev1.Container, _ *corev1.ContainerStatus) {
		p.Spec.Containers[0].Resources = fxResources("", "", "1", "1Gi") // requests default to limits
	}
	cases := []struct {
		name string
		snap *Snapshot
		want []string
		sev  Severity
	}{
		{"Guaranteed-shaped app, Burstable sidecar", fxMeshedPod(func(p *corev1.Pod, proxy *corev1.Container, st *corev1.ContainerStatus) {
			guaranteedApp(p, proxy, st)
			proxy.Resources = fxResources("100m", "128Mi", "2", "1Gi")
			p.Status.QOSClass = corev1.PodQOSBurstable
		}), []string{"MESH1402"}, SeverityWarning},
		{"sidecar without requests", fxMeshedPod(nil), []string{"MESH1402"}, SeverityInfo},
		{"healthy: Guaranteed app and sidecar", fxMeshedPod(func(p *corev1.Pod, proxy *corev1.Container, st *corev1.ContainerStatus) {
			guaranteedApp(p, proxy, st)
			proxy.Resources = fxResources("500m", "512Mi", "500m", "512Mi")
		}), []string{}, ""},
		{"healthy: Burstable app, Istio's default sidecar", fxMeshedPod(func(p *corev1.Pod, proxy *corev1.Container, st *corev1.ContainerStatus) {
			proxy.Resources = fxResources("100m", "128Mi", "2", "1Gi")
		}), []string{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := fxRun(t, SidecarQoSRule{}, tc.snap)
			if got := fxCodes(fs); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("codes = %v, want %v", got, tc.want)
			}
			if len(fs) > 0 && fs[0].Severity != tc.sev {
				t.Errorf("severity = %s, want %s", fs[0].Severity, tc.sev)
			}
			if tc.sev == SeverityWarning && !strings.Contains(fs[0].Fix.YAML, `sidecar.istio.io/proxyCPU: "2"`) {
				t.Errorf("fix YAML should make requests equal to the limits:\n%s", fs[0].Fix.YAML)
			}
		})
	}
}

func TestServicePortProtocolRule(t *testing.T) {
	svc := func(ports ...corev1.ServicePort) *Snapshot {
		return &Snapshot{Services: []corev1.Service{{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "default"}, Spec: corev1.ServiceSpec{Ports: ports}}}}
	}
	grpc := "grpc"
	cases := []struct {
		name string
		snap *Snapshot
		want []string
	}{
		{"unnamed port", svc(corev1.ServicePort{Port: 9080}), []string{"MESH0704"}},
		{"name without a protocol prefix", svc(corev1.ServicePort{Name: "web", Port: 9080}, corev1.ServicePort{Name: "http-admin", Port: 8080}), []string{"MESH0704"}},
		{"healthy: prefixed names and appProtocol", svc(corev1.ServicePort{Name: "http", Port: 9080}, corev1.ServicePort{Name: "grpc-api", Port: 9090},
			corev1.ServicePort{Name: "api", Port: 7070, AppProtocol: &grpc}, corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}), []string{}},
		{"healthy: no Services", &Snapshot{Services: []corev1.Service{}}, []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := fxRun(t, ServicePortProtocolRule{}, tc.snap)
			if got := fxCodes(fs); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("codes = %v, want %v", got, tc.want)
			}
			if len(fs) > 0 && (strings.Contains(fs[0].Title, "8080") || fs[0].Subject.Kind != SubjectService) {
				t.Errorf("finding %s on %v: only unprefixed ports, about the Service", fs[0].Title, fs[0].Subject)
			}
		})
	}
}

func TestIstioHostMatches(t *testing.T) {
	const host = "reviews.default.svc.cluster.local"
	cases := []struct {
		pattern, ns string
		want        bool
	}{
		{"reviews", "default", true},
		{"reviews", "other", false},
		{"reviews.default.svc.cluster.local", "other", true},
		{"reviews.default", "default", false}, // istiod completes only names without a dot
		{"*.default.svc.cluster.local", "other", true},
		{"*.svc.cluster.local", "default", true},
		{"*.other.svc.cluster.local", "default", false},
		{"*", "default", true},
		{"ratings", "default", false},
	}
	for _, tc := range cases {
		if got := IstioHostMatches(tc.pattern, tc.ns, host); got != tc.want {
			t.Errorf("IstioHostMatches(%q, %q) = %v, want %v", tc.pattern, tc.ns, got, tc.want)
		}
	}
}

const fxIstioYAML = `apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: reviews-wild, namespace: istio-system}
  spec: {host: "*.default.svc.cluster.local", trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: reviews-external, namespace: default}
  spec: {host: reviews, trafficPolicy: {tls: {mode: DISABLE}}, subsets: [{name: v2, labels: {version: v2}, trafficPolicy: {tls: {mode: SIMPLE}}}]}
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: private, namespace: other}
  spec: {host: reviews.default.svc.cluster.local, exportTo: ["."]}
- apiVersion: security.istio.io/v1
  kind: PeerAuthentication
  metadata: {name: default, namespace: istio-system}
  spec: {mtls: {mode: PERMISSIVE}}
- apiVersion: security.istio.io/v1
  kind: PeerAuthentication
  metadata: {name: default, namespace: default}
  spec: {mtls: {mode: STRICT}, unknownField: 1}
- apiVersion: networking.istio.io/v1
  kind: VirtualService
  metadata: {name: reviews, namespace: default}
  spec: {hosts: [reviews], http: [{timeout: 500ms, route: [{destination: {host: reviews}}]}]}
- apiVersion: networking.istio.io/v1
  kind: VirtualService
  metadata: {name: ingress, namespace: default}
  spec: {hosts: [reviews], gateways: [bookinfo-gateway]}
`

func TestLoadKube(t *testing.T) {
	fsys := fstest.MapFS{
		FileIstio:    {Data: []byte(fxIstioYAML)},
		FileServices: {Data: []byte("apiVersion: v1\nkind: ServiceList\nitems: []\n")},
		FileEvents:   {Data: []byte("apiVersion: v1\nkind: PodList\nitems: []\n")},
	}
	s, err := LoadFS(fsys, "test", fxNow)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Has(InputIstioConfig) || !s.Has(InputServices) || s.Has(InputEvents) || s.Has(InputEndpoints) {
		t.Errorf("Has: istio %v services %v events %v endpoints %v", s.Has(InputIstioConfig), s.Has(InputServices), s.Has(InputEvents), s.Has(InputEndpoints))
	}
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "holds a PodList") {
		t.Errorf("warnings = %q, want one about the PodList in events.yaml", s.Warnings)
	}
	const host = "reviews.default.svc.cluster.local"
	if dr := s.Istio.DestinationRuleFor("default", host); dr == nil || dr.Ref() != "default/reviews-external" || dr.TLSMode("") != "DISABLE" || dr.TLSMode("v2") != "SIMPLE" {
		t.Errorf("DestinationRuleFor(default) = %+v, want default/reviews-external (DISABLE, subset v2 SIMPLE)", dr)
	}
	if dr := s.Istio.DestinationRuleFor("prod", host); dr == nil || dr.Ref() != "default/reviews-external" {
		t.Errorf("DestinationRuleFor(prod) = %+v, want the service namespace's rule (other's is not exported)", dr)
	}
	if dr := s.Istio.DestinationRuleFor("prod", "ratings.default.svc.cluster.local"); dr == nil || dr.Ref() != "istio-system/reviews-wild" {
		t.Errorf("DestinationRuleFor(prod, ratings) = %+v, want the mesh-wide wildcard rule", dr)
	}
	if pa := s.Istio.NamespaceMTLS("default"); pa == nil || pa.Mode() != "STRICT" {
		t.Errorf("NamespaceMTLS(default) = %+v", pa)
	}
	if pa := s.Istio.NamespaceMTLS("prod"); pa == nil || pa.Ref() != "istio-system/default" {
		t.Errorf("NamespaceMTLS(prod) = %+v, want the mesh-wide policy", pa)
	}
	if vs := s.Istio.VirtualServicesFor("default", host); len(vs) != 1 || vs[0].Spec.HTTP[0].Timeout != "500ms" {
		t.Errorf("VirtualServicesFor = %+v, want only the mesh one", vs)
	}
}

func TestSidecarRuleEvents(t *testing.T) {
	notReady := func(evs ...corev1.Event) *Snapshot {
		s := fxMeshedPod(func(p *corev1.Pod, c *corev1.Container, st *corev1.ContainerStatus) { st.Ready = false })
		s.Events = append([]corev1.Event{}, evs...)
		return s
	}
	ev := func(reason, msg string, count int32) corev1.Event {
		return corev1.Event{Reason: reason, Message: msg, Count: count, LastTimestamp: metav1.NewTime(fxNow.Add(-time.Minute)),
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", FieldPath: "spec.containers{istio-proxy}"}}
	}
	cases := []struct {
		name, want string
		snap       *Snapshot
	}{
		{"503: not configured by istiod", "not yet configured by istiod", notReady(ev("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503", 40))},
		{"refused: pilot-agent not listening", "refused 7 times", notReady(ev("Unhealthy", `Readiness probe failed: Get "http://10.0.0.1:15021/healthz/ready": dial tcp 10.0.0.1:15021: connect: connection refused`, 7))},
		{"events of another container are ignored", "probe failures in the pod's events: 0", notReady(corev1.Event{Reason: "Unhealthy", Message: "Readiness probe failed: HTTP probe failed with statuscode: 500",
			InvolvedObject: corev1.ObjectReference{FieldPath: "spec.containers{reviews}"}})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := fxRun(t, SidecarRule{}, tc.snap)
			if len(fs) != 1 || fs[0].Code != "MESH1301" {
				t.Fatalf("findings %v, want MESH1301", fxCodes(fs))
			}
			all := fs[0].Explanation
			for _, e := range fs[0].Evidence {
				all += "\n" + e.Label + ": " + e.Text
				if e.Text == "" {
					all += fmt.Sprint(e.Value)
				}
			}
			if !strings.Contains(all, tc.want) {
				t.Errorf("want %q in the finding:\n%s", tc.want, all)
			}
		})
	}
	// A ready sidecar stays silent whatever its past events say.
	s := fxMeshedPod(nil)
	s.Events = []corev1.Event{ev("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503", 3)}
	if fs := fxRun(t, SidecarRule{}, s); len(fs) != 0 {
		t.Errorf("ready sidecar: findings %v", fxCodes(fs))
	}
}

// TestKubeIncidents checks what the Kubernetes evidence of the incidents adds: the objects named
// in the mTLS finding, the probe failures in the not-ready one, the EndpointSlices in the UH one,
// and nothing at all in the healthy one.
func TestKubeIncidents(t *testing.T) {
	evidence := func(f Finding) string {
		var b strings.Builder
		for _, e := range f.Evidence {
			b.WriteString(e.Label + ": " + e.Text + " [" + e.Source + "]\n")
		}
		return b.String() + f.Explanation + "\n" + f.Fix.Summary
	}
	cases := []struct {
		incident string
		want     []string
	}{
		{"mtls-mismatch", []string{"default/reviews-external", "default/default: mtls.mode STRICT", "confirms the mismatch"}},
		{"sidecar-not-ready", []string{"probe failures in the pod's events", "not yet configured by istiod"}},
		{"no-endpoints", []string{"ready endpoints in the service's EndpointSlices", "reviews-v1-5b5d6494f4-8hm2c", "none of the 3 endpoints"}},
	}
	for _, tc := range cases {
		t.Run(tc.incident, func(t *testing.T) {
			r := diagnoseIncident(t, tc.incident)
			got := evidence(r.Findings[0])
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("top finding %s lacks %q:\n%s", r.Findings[0].Code, w, got)
				}
			}
		})
	}
	for _, f := range diagnoseIncident(t, "healthy").Findings {
		if f.Code == string(CodeUndeclaredProtocol) || f.Code == string(CodeSidecarLowersQoS) {
			t.Errorf("healthy incident: %s %s", f.Code, f.Title)
		}
	}
}
