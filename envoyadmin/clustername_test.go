package envoyadmin

import "testing"

func TestParseClusterName(t *testing.T) {
	tests := []struct {
		in   string
		want ClusterName
	}{
		{"outbound|9080|v2|reviews.default.svc.cluster.local",
			ClusterName{Direction: "outbound", Port: 9080, Subset: "v2", Host: "reviews.default.svc.cluster.local"}},
		{"outbound|8000||httpbin.default.svc.cluster.local",
			ClusterName{Direction: "outbound", Port: 8000, Host: "httpbin.default.svc.cluster.local"}},
		{"inbound|8080||", ClusterName{Direction: "inbound", Port: 8080}},
		{"inbound|9080|http|", ClusterName{Direction: "inbound", Port: 9080, PortName: "http"}},
		{"inbound-vip|9080|http|details.bookinfo.svc.cluster.local",
			ClusterName{Direction: "inbound-vip", Port: 9080, PortName: "http", Host: "details.bookinfo.svc.cluster.local"}},
		{"outbound_.8000_._.httpbin.default.svc.cluster.local",
			ClusterName{Direction: "outbound", Port: 8000, Host: "httpbin.default.svc.cluster.local"}},
		{"outbound_.9080_.v1_.reviews.default.svc.cluster.local",
			ClusterName{Direction: "outbound", Port: 9080, Subset: "v1", Host: "reviews.default.svc.cluster.local"}},
		// Not Istio's convention: only Raw.
		{"xds-grpc", ClusterName{}},
		{"PassthroughCluster", ClusterName{}},
		{"echo-server_kuma-test_svc_8080-369bce2d30623ffb", ClusterName{}},
		{"cluster_127_0_0_1_8500_ambassador", ClusterName{}},
		{"outbound|http|v1|reviews", ClusterName{}}, // port not a number
		{"outbound|99999||reviews", ClusterName{}},  // port out of range
		{"Outbound|80||x", ClusterName{}},           // not a direction Istio writes
		{"a|b|c", ClusterName{}},                    // three parts
		{"local_app|1|2|3", ClusterName{}},          // no direction
		{"outbound|80||a|b", ClusterName{}},         // five parts
		{"", ClusterName{}},
	}
	for _, tt := range tests {
		tt.want.Raw = tt.in
		if got := ParseClusterName(tt.in); got != tt.want {
			t.Errorf("ParseClusterName(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestServiceHostParts(t *testing.T) {
	for host, want := range map[string][3]string{
		"reviews.default.svc.cluster.local": {"reviews", "default", "ok"},
		"reviews.default.svc":               {"reviews", "default", "ok"},
		"api.example.com":                   {"", "", ""},
		"reviews":                           {"", "", ""},
		".default.svc.cluster.local":        {"", "", ""},
	} {
		name, ns, ok := ServiceHostParts(host)
		if name != want[0] || ns != want[1] || ok != (want[2] == "ok") {
			t.Errorf("ServiceHostParts(%q) = %q, %q, %v", host, name, ns, ok)
		}
	}
}
