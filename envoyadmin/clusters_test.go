package envoyadmin

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

// findCluster returns the named cluster or fails the test.
func findCluster(t *testing.T, uc *UpstreamClusters, name string) UpstreamCluster {
	t.Helper()
	for _, c := range uc.Clusters {
		if c.Name.Raw == name {
			return c
		}
	}
	t.Fatalf("cluster %q not found", name)
	return UpstreamCluster{}
}

// findHost returns the host with the address or fails the test.
func findHost(t *testing.T, c UpstreamCluster, addr string) UpstreamHost {
	t.Helper()
	for _, h := range c.Hosts {
		if h.Address == addr {
			return h
		}
	}
	t.Fatalf("host %q not found in %s", addr, c.Name.Raw)
	return UpstreamHost{}
}

func u32(v uint32) *uint32 { return &v }

func TestParseClustersTextCapture(t *testing.T) {
	for _, file := range captures.Files(t, "clusters_text") {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseClustersText(bytes.NewReader(data)); err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}

	data := captures.Read(t, "clusters_text/envoy-examples-locality-lb-health_flags.txt")
	got, err := ParseClustersText(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Clusters) != 1 {
		t.Fatalf("got %d clusters, want 1 (backend)", len(got.Clusters))
	}
	backend := findCluster(t, got, "backend")
	if len(backend.Hosts) != 7 {
		t.Fatalf("backend has %d hosts, want 7", len(backend.Hosts))
	}
	tests := []struct {
		addr  string
		flags []string
	}{
		{"172.28.0.4:8080", []string{"failed_active_hc"}},
		{"172.28.0.2:8080", []string{"failed_active_hc"}},
		{"172.28.0.5:8080", []string{"failed_active_hc"}},
		{"172.28.0.6:8080", []string{"failed_active_hc"}},
		{"172.28.0.7:8080", nil},
		{"172.28.0.8:8080", nil},
		{"172.28.0.3:8080", nil},
	}
	for i, tt := range tests {
		h := backend.Hosts[i] // hosts keep the order of the output
		if h.Address != tt.addr || !reflect.DeepEqual(h.HealthFlags, tt.flags) {
			t.Errorf("host %d = %s %q, want %s %q", i, h.Address, h.HealthFlags, tt.addr, tt.flags)
		}
		if h.Healthy() != (tt.flags == nil) {
			t.Errorf("%s Healthy() = %v", h.Address, h.Healthy())
		}
	}
}

// A full /clusters text output in the shape Envoy prints it, with an Istio cluster, an IPv6
// host, both circuit-breaker priorities and several health flags at once.
const clustersTextFull = `outbound|9080||reviews.default.svc.cluster.local::observability_name::outbound|9080||reviews.default.svc.cluster.local
outbound|9080||reviews.default.svc.cluster.local::default_priority::max_connections::4294967295
outbound|9080||reviews.default.svc.cluster.local::default_priority::max_pending_requests::10
outbound|9080||reviews.default.svc.cluster.local::default_priority::max_requests::4294967295
outbound|9080||reviews.default.svc.cluster.local::default_priority::max_retries::4294967295
outbound|9080||reviews.default.svc.cluster.local::high_priority::max_connections::1024
outbound|9080||reviews.default.svc.cluster.local::high_priority::max_pending_requests::1024
outbound|9080||reviews.default.svc.cluster.local::high_priority::max_requests::1024
outbound|9080||reviews.default.svc.cluster.local::high_priority::max_retries::3
outbound|9080||reviews.default.svc.cluster.local::added_via_api::true
outbound|9080||reviews.default.svc.cluster.local::eds_service_name::outbound|9080||reviews.default.svc.cluster.local
outbound|9080||reviews.default.svc.cluster.local::outlier::success_rate_average::-1
outbound|9080||reviews.default.svc.cluster.local::10.244.0.12:9080::cx_active::2
outbound|9080||reviews.default.svc.cluster.local::10.244.0.12:9080::cx_connect_fail::7
outbound|9080||reviews.default.svc.cluster.local::10.244.0.12:9080::rq_timeout::3
outbound|9080||reviews.default.svc.cluster.local::10.244.0.12:9080::rq_total::1200
outbound|9080||reviews.default.svc.cluster.local::10.244.0.12:9080::hostname::
outbound|9080||reviews.default.svc.cluster.local::10.244.0.12:9080::health_flags::/failed_outlier_check/failed_eds_health
outbound|9080||reviews.default.svc.cluster.local::10.244.0.12:9080::weight::1
outbound|9080||reviews.default.svc.cluster.local::10.244.0.12:9080::region::us-east1
outbound|9080||reviews.default.svc.cluster.local::10.244.0.12:9080::zone::us-east1-b
outbound|9080||reviews.default.svc.cluster.local::10.244.0.12:9080::sub_zone::
outbound|9080||reviews.default.svc.cluster.local::10.244.0.12:9080::canary::false
outbound|9080||reviews.default.svc.cluster.local::10.244.0.12:9080::priority::0
outbound|9080||reviews.default.svc.cluster.local::10.244.0.12:9080::success_rate::87.5
outbound|9080||reviews.default.svc.cluster.local::10.244.0.12:9080::local_origin_success_rate::-1
outbound|9080||reviews.default.svc.cluster.local::[fd00::1]:9080::cx_active::0
outbound|9080||reviews.default.svc.cluster.local::[fd00::1]:9080::health_flags::healthy
outbound|9080||reviews.default.svc.cluster.local::[fd00::1]:9080::weight::3
outbound|9080||reviews.default.svc.cluster.local::[fd00::1]:9080::success_rate::-1

xds-grpc::default_priority::max_connections::100000
xds-grpc::added_via_api::false
xds-grpc::./etc/istio/proxy/XDS::health_flags::healthy
`

func TestParseClustersTextFull(t *testing.T) {
	got, err := ParseClustersText(strings.NewReader(clustersTextFull))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Clusters) != 2 {
		t.Fatalf("got %d clusters, want 2", len(got.Clusters))
	}
	reviews := findCluster(t, got, "outbound|9080||reviews.default.svc.cluster.local")
	if !reviews.AddedViaAPI || reviews.Name.Port != 9080 || reviews.Name.Direction != "outbound" {
		t.Errorf("reviews = %+v", reviews)
	}
	wantCB := []CircuitBreaker{
		{Priority: "DEFAULT", MaxConnections: u32(4294967295), MaxPendingRequests: u32(10), MaxRequests: u32(4294967295), MaxRetries: u32(4294967295)},
		{Priority: "HIGH", MaxConnections: u32(1024), MaxPendingRequests: u32(1024), MaxRequests: u32(1024), MaxRetries: u32(3)},
	}
	if !reflect.DeepEqual(reviews.CircuitBreakers, wantCB) {
		t.Errorf("circuit breakers = %+v", reviews.CircuitBreakers)
	}
	if len(reviews.Hosts) != 2 {
		t.Fatalf("reviews has %d hosts, want 2", len(reviews.Hosts))
	}
	h := findHost(t, reviews, "10.244.0.12:9080")
	want := UpstreamHost{
		Address:     "10.244.0.12:9080",
		HealthFlags: []string{"failed_outlier_check", "failed_eds_health"},
		Weight:      1,
		Zone:        "us-east1-b",
		Stats:       map[string]uint64{"cx_active": 2, "cx_connect_fail": 7, "rq_timeout": 3, "rq_total": 1200},
		SuccessRate: 87.5,
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("host = %+v\nwant %+v", h, want)
	}
	v6 := findHost(t, reviews, "[fd00::1]:9080")
	if !v6.Healthy() || v6.Weight != 3 || v6.SuccessRate != -1 || v6.Stats["cx_active"] != 0 {
		t.Errorf("IPv6 host = %+v", v6)
	}
	xds := findCluster(t, got, "xds-grpc")
	if xds.AddedViaAPI || len(xds.Hosts) != 1 || xds.Hosts[0].Address != "./etc/istio/proxy/XDS" {
		t.Errorf("xds-grpc = %+v", xds)
	}
	if *xds.CircuitBreakers[0].MaxConnections != 100000 || xds.CircuitBreakers[0].MaxRetries != nil {
		t.Errorf("xds-grpc breakers = %+v", xds.CircuitBreakers)
	}
}

func TestParseClustersTextErrors(t *testing.T) {
	for _, in := range []string{
		"not a clusters line",
		"c::[fd00::1",
		"c::10.0.0.1:80",
		"c::default_priority::max_connections",
		"::x::y",
	} {
		if _, err := ParseClustersText(strings.NewReader(in)); err == nil {
			t.Errorf("ParseClustersText(%q): no error", in)
		}
	}
	got, err := ParseClustersText(strings.NewReader("\n\n"))
	if err != nil || len(got.Clusters) != 0 {
		t.Errorf("empty input = %+v, %v", got, err)
	}
}

func TestParseClustersJSONCapture(t *testing.T) {
	got, err := ParseClustersJSON(captures.Read(t, "clusters_json/istio-sidecar-clusters.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Clusters) != 7 {
		t.Fatalf("got %d clusters, want 7", len(got.Clusters))
	}
	tests := []struct {
		cluster   string
		addedAPI  bool
		host      string
		flags     []string
		edsHealth string
		stats     map[string]uint64
		weight    uint32
	}{
		{
			cluster: "outbound|443||istio-sidecar-injector.istio-system.svc.cluster.local", addedAPI: true,
			host: "172.17.0.4:443", edsHealth: "HEALTHY",
			stats: map[string]uint64{"cx_active": 0, "cx_connect_fail": 0, "cx_total": 0, "rq_active": 0, "rq_error": 0, "rq_success": 0, "rq_timeout": 0, "rq_total": 0},
		},
		{
			cluster: "outbound|15014||istio-policy.istio-system.svc.cluster.local", addedAPI: true,
			host: "172.17.0.14:15014", flags: []string{"failed_eds_health"}, edsHealth: "UNHEALTHY",
		},
		{
			cluster: "outbound|9080||reviews.default.svc.cluster.local", addedAPI: true,
			host: "172.17.0.27:9080", flags: []string{"failed_outlier_check"}, edsHealth: "HEALTHY",
		},
		{
			cluster: "outbound|9080||reviews.default.svc.cluster.local", addedAPI: true,
			host: "172.17.0.24:9080", edsHealth: "HEALTHY",
		},
		{
			// snake_case inside this one, values as strings, a pipe address and a weight.
			cluster: "inbound_9092", host: "/sock/mixer.socket", edsHealth: "HEALTHY", weight: 1,
			stats: map[string]uint64{"cx_connect_fail": 64, "cx_total": 72, "rq_error": 78, "rq_success": 300076, "rq_timeout": 0, "rq_total": 300076, "cx_active": 8, "rq_active": 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.cluster+"/"+tt.host, func(t *testing.T) {
			c := findCluster(t, got, tt.cluster)
			if c.AddedViaAPI != tt.addedAPI {
				t.Errorf("AddedViaAPI = %v, want %v", c.AddedViaAPI, tt.addedAPI)
			}
			h := findHost(t, c, tt.host)
			if !reflect.DeepEqual(h.HealthFlags, tt.flags) || h.EDSHealth != tt.edsHealth {
				t.Errorf("flags, EDS health = %q, %s; want %q, %s", h.HealthFlags, h.EDSHealth, tt.flags, tt.edsHealth)
			}
			if tt.stats != nil && !reflect.DeepEqual(h.Stats, tt.stats) {
				t.Errorf("stats = %v, want %v", h.Stats, tt.stats)
			}
			if h.Weight != tt.weight || h.SuccessRate != -1 {
				t.Errorf("weight, success rate = %d, %v", h.Weight, h.SuccessRate)
			}
		})
	}
	reviews := findCluster(t, got, "outbound|9080||reviews.default.svc.cluster.local")
	if len(reviews.Hosts) != 3 || reviews.Name.Port != 9080 || reviews.Name.Host != "reviews.default.svc.cluster.local" {
		t.Errorf("reviews = %+v", reviews)
	}
	unhealthy := 0
	for _, c := range got.Clusters {
		for _, h := range c.Hosts {
			if !h.Healthy() {
				unhealthy++
			}
		}
	}
	if unhealthy != 2 {
		t.Errorf("%d unhealthy hosts, want 2 (istio-policy EDS, reviews outlier)", unhealthy)
	}
}

// clustersJSONSnake is /clusters?format=json as recent Envoy prints it: snake_case, circuit
// breakers, locality, success rate, an IPv6 host and an internal address.
const clustersJSONSnake = `{"cluster_statuses":[{
 "name":"outbound|8000||httpbin.default.svc.cluster.local","added_via_api":true,
 "circuit_breakers":{"thresholds":[
   {"max_connections":1,"max_pending_requests":1,"max_requests":4294967295,"max_retries":4294967295},
   {"priority":"HIGH","max_connections":1024,"max_pending_requests":1024,"max_requests":1024,"max_retries":3}]},
 "host_statuses":[
  {"address":{"socket_address":{"address":"10.1.0.7","port_value":80}},
   "stats":[{"name":"cx_connect_fail","value":"12"},{"name":"rq_total","value":"99"},{"type":"GAUGE","name":"rq_active"}],
   "health_status":{"failed_active_health_check":true,"pending_dynamic_removal":true,"eds_health_status":"HEALTHY"},
   "success_rate":{"value":42.5},"weight":2,"locality":{"region":"r","zone":"z1"}},
  {"address":{"socket_address":{"address":"fd00::7","port_value":80}},
   "health_status":{"eds_health_status":"DEGRADED"}},
  {"address":{"envoy_internal_address":{"server_listener_name":"connect_originate","endpoint_id":"10.1.0.8:80"}},
   "health_status":{"eds_health_status":3}}
 ]}]}`

func TestParseClustersJSONSnakeCase(t *testing.T) {
	got, err := ParseClustersJSON([]byte(clustersJSONSnake))
	if err != nil {
		t.Fatal(err)
	}
	c := findCluster(t, got, "outbound|8000||httpbin.default.svc.cluster.local")
	wantCB := []CircuitBreaker{
		{Priority: "DEFAULT", MaxConnections: u32(1), MaxPendingRequests: u32(1), MaxRequests: u32(4294967295), MaxRetries: u32(4294967295)},
		{Priority: "HIGH", MaxConnections: u32(1024), MaxPendingRequests: u32(1024), MaxRequests: u32(1024), MaxRetries: u32(3)},
	}
	if !c.AddedViaAPI || !reflect.DeepEqual(c.CircuitBreakers, wantCB) {
		t.Errorf("cluster = %+v", c)
	}
	h := findHost(t, c, "10.1.0.7:80")
	want := UpstreamHost{
		Address:     "10.1.0.7:80",
		HealthFlags: []string{"failed_active_hc", "pending_dynamic_removal"},
		EDSHealth:   "HEALTHY",
		Weight:      2,
		Zone:        "z1",
		Stats:       map[string]uint64{"cx_connect_fail": 12, "rq_total": 99, "rq_active": 0},
		SuccessRate: 42.5,
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("host = %+v\nwant %+v", h, want)
	}
	v6 := findHost(t, c, "[fd00::7]:80")
	if !reflect.DeepEqual(v6.HealthFlags, []string{"degraded_eds_health"}) || v6.EDSHealth != "DEGRADED" {
		t.Errorf("IPv6 host = %+v", v6)
	}
	internal := findHost(t, c, "envoy://connect_originate/10.1.0.8:80")
	if !reflect.DeepEqual(internal.HealthFlags, []string{"failed_eds_health"}) || internal.EDSHealth != "DRAINING" {
		t.Errorf("internal host = %+v", internal)
	}
}

func TestParseClustersJSONErrors(t *testing.T) {
	for _, in := range []string{``, `{`, `[]`, `{"cluster_statuses":{}}`, `{"cluster_statuses":[{"name":1}]}`, `{} {}`} {
		if _, err := ParseClustersJSON([]byte(in)); err == nil {
			t.Errorf("ParseClustersJSON(%q): no error", in)
		}
	}
	got, err := ParseClustersJSON([]byte(`{}`))
	if err != nil || len(got.Clusters) != 0 {
		t.Errorf("ParseClustersJSON({}) = %+v, %v", got, err)
	}
}
