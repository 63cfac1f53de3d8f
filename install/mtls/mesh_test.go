package mtls

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-mesh/kubectl-mesh/collect"
	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/fakeapi"
)

// The fake mesh of mtls's tests: the fake API server, and the sidecars that Options.Sample and
// Options.ConfigDump read, with the traffic and the listeners a test case gives them.

var (
	paGVK = schema.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "PeerAuthentication"}
	paGVR = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "peerauthentications"}
)

const window = 10 * time.Second

func pod(ns, name string, sidecar bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": strings.SplitN(name, "-", 2)[0]}},
		Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	if sidecar {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: collect.SidecarContainer, Image: "docker.io/istio/proxyv2:1.30.3"})
	}
	return p
}

// flow is inbound traffic a sidecar saw over the window: requests from a source workload
// ("" for a client outside the mesh), with or without mTLS, answered with code ("200" when "").
type flow struct {
	srcNS, src string
	requests   float64
	plaintext  bool
	code       string
}

// sidecar is what one sidecar answers: its inbound flows, or an error for its stats; and the
// inbound modes of its config dumps, one per read (the last repeats), or an error.
type sidecar struct {
	flows   []flow
	err     error
	modes   []string
	dumpErr error
}

func interval(ns, pod string, flows []flow) *envoyadmin.StatsInterval {
	sample := func(scale float64) *envoyadmin.StatsSample {
		s := &envoyadmin.StatsSample{}
		for _, f := range flows {
			l := map[string]string{"reporter": "destination", "destination_workload": strings.SplitN(pod, "-", 2)[0] + "-v1", "destination_workload_namespace": ns,
				"source_workload": "unknown", "source_workload_namespace": "unknown", "connection_security_policy": "mutual_tls", "response_code": "200"}
			if f.code != "" {
				l["response_code"] = f.code
			}
			if f.src != "" {
				l["source_workload"], l["source_workload_namespace"] = f.src, f.srcNS
			}
			if f.plaintext {
				l["connection_security_policy"] = "none"
			}
			s.Istio = append(s.Istio, envoyadmin.IstioSeries{Metric: "istio_requests_total", Labels: l, Value: 1000 + scale*f.requests})
			// The source side of the same requests: not the inbound side, so never counted.
			src := map[string]string{"reporter": "source", "connection_security_policy": "none", "source_workload_namespace": "elsewhere"}
			s.Istio = append(s.Istio, envoyadmin.IstioSeries{Metric: "istio_requests_total", Labels: src, Value: 1000 + scale*f.requests})
		}
		return s
	}
	return envoyadmin.NewStatsInterval(sample(0), sample(1), window)
}

// dump is a config dump whose virtualInbound listener is in mode: STRICT has only a TLS chain
// that requires a client certificate; PERMISSIVE adds a plaintext chain on the same port. A
// gateway's ("no inbound listener") has one plaintext listener of its own, not inbound.
func dump(mode string) []byte {
	if mode == "no inbound listener" {
		return []byte(`{"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamic_listeners": [{"name": "0.0.0.0_8080", "active_state": {"listener": {
		  "@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "0.0.0.0_8080",
		  "address": {"socket_address": {"address": "0.0.0.0", "port_value": 8080}},
		  "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "stat_prefix": "gw", "cluster": "outbound|9080||reviews.shop.svc.cluster.local"}}]}]}}}]}]}`)
	}
	tls := `"transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext", "require_client_certificate": true}}`
	tcp := `"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "stat_prefix": "inbound|9080||", "cluster": "inbound|9080||"}}]`
	chains := []string{`{"name": "0.0.0.0_9080", "filter_chain_match": {"destination_port": 9080, "transport_protocol": "tls"}, ` + tls + `, ` + tcp + `}`}
	if mode == ModePermissive {
		chains = append(chains, `{"name": "0.0.0.0_9080", "filter_chain_match": {"destination_port": 9080, "transport_protocol": "raw_buffer"}, `+tcp+`}`)
	}
	return []byte(`{"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamic_listeners": [{"name": "virtualInbound", "active_state": {"listener": {
	  "@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "virtualInbound", "traffic_direction": "INBOUND",
	  "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15006}},
	  "filter_chains": [` + strings.Join(chains, ",") + `]}}}]}]}`)
}

// mesh is the fake cluster and its sidecars, and what the engine asked of them.
type mesh struct {
	api      *fakeapi.Server
	sidecars map[string]*sidecar // by namespace/pod

	mu      sync.Mutex
	sampled [][]string // the pods of each Sample call
	reads   map[string]int
}

func newMesh(sidecars map[string]*sidecar, objs ...runtime.Object) *mesh {
	return &mesh{api: fakeapi.New(fakeapi.Options{Kinds: []fakeapi.Kind{{GVK: paGVK, Namespaced: true}}, Objects: objs}),
		sidecars: sidecars, reads: map[string]int{}}
}

func (m *mesh) options(o Options) Options {
	o.Client, o.Dynamic, o.Mapper, o.Window = m.api.Client, m.api.Dynamic, m.api.Mapper, window
	o.VerifyTimeout, o.VerifyPoll = 20*time.Millisecond, time.Millisecond
	o.Sample = func(ctx context.Context, pods []corev1.Pod, families ...string) []collect.PodInterval {
		m.mu.Lock()
		defer m.mu.Unlock()
		if !slices.Contains(families, "istio_requests_total") {
			panic(fmt.Sprintf("sampled %v without the requests", families))
		}
		var names []string
		out := make([]collect.PodInterval, len(pods))
		for i, p := range pods {
			key := p.Namespace + "/" + p.Name
			names = append(names, key)
			out[i] = collect.PodInterval{Namespace: p.Namespace, Pod: p.Name}
			sc := m.sidecars[key]
			switch {
			case sc == nil:
				out[i].Err = errors.New("no such sidecar in the test")
			case sc.err != nil:
				out[i].Err = sc.err
			default:
				out[i].Interval = interval(p.Namespace, p.Name, sc.flows)
			}
		}
		m.sampled = append(m.sampled, names)
		return out
	}
	o.ConfigDump = func(ctx context.Context, ns, pod string) ([]byte, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		key := ns + "/" + pod
		sc := m.sidecars[key]
		if sc == nil || sc.dumpErr != nil {
			return nil, fmt.Errorf("config dump of %s: %v", key, sc.dumpErr)
		}
		n := m.reads[key]
		m.reads[key]++
		return dump(sc.modes[min(n, len(sc.modes)-1)]), nil
	}
	return o
}

func (m *mesh) peerAuthentication(t *testing.T, ns string) *unstructured.Unstructured {
	t.Helper()
	pa, err := m.api.Dynamic.Resource(paGVR).Namespace(ns).Get(context.Background(), Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return pa
}

func modeOf(pa *unstructured.Unstructured) string {
	if pa == nil {
		return "none"
	}
	m, _, _ := unstructured.NestedString(pa.Object, "spec", "mtls", "mode")
	return m
}

func sources(cs []Client) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Source)
	}
	return out
}
