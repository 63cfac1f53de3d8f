package diagnose

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

const fxReviews = "outbound|9080||reviews.default.svc.cluster.local"

func fxInbound(mode string) envoyadmin.ListenerConfig {
	return envoyadmin.ListenerConfig{Name: "virtualInbound", Address: "0.0.0.0:15006", Inbound: true, MTLSMode: mode}
}

// fxModeConfig is a config with one cluster in a TLS mode and endpoints with or without sidecars.
func fxModeConfig(mode string, sidecars, plain int, listeners ...envoyadmin.ListenerConfig) *envoyadmin.ConfigSummary {
	var eps []envoyadmin.Endpoint
	for i := 0; i < sidecars; i++ {
		eps = append(eps, envoyadmin.Endpoint{Address: "10.0.1." + string(rune('1'+i)) + ":9080", TLSMode: "istio"})
	}
	for i := 0; i < plain; i++ {
		eps = append(eps, envoyadmin.Endpoint{Address: "10.0.2." + string(rune('1'+i)) + ":9080"})
	}
	return &envoyadmin.ConfigSummary{
		Clusters:  []envoyadmin.ClusterConfig{{Name: envoyadmin.ParseClusterName(fxReviews), TLSMode: mode}},
		Endpoints: []envoyadmin.ClusterEndpoints{{Cluster: fxReviews, Endpoints: eps}},
		Listeners: listeners,
	}
}

const fxFilterChainNotFound = `[2026-01-15T11:59:00.000Z] "- - -" 0 NR filter_chain_not_found - "-" 0 0 0 - "-" "-" "-" "-" "-" - - 10.0.0.2:8080 10.0.9.9:51000 - -`

func fxPlaintextMetrics(none, mtls float64) []envoyadmin.IstioSeries {
	return []envoyadmin.IstioSeries{
		fxIstio("istio_requests_total", none, "reporter", "destination", "connection_security_policy", "none", "source_workload", "legacy-client", "source_workload_namespace", "batch", "response_code", "200", "response_flags", "-"),
		fxIstio("istio_requests_total", mtls, "reporter", "destination", "connection_security_policy", "mutual_tls", "source_workload", "productpage-v1", "source_workload_namespace", "default", "response_code", "200", "response_flags", "-"),
	}
}

func TestMTLSRule(t *testing.T) {
	withIstio := func(ss *envoyadmin.StatsSample, series []envoyadmin.IstioSeries) *envoyadmin.StatsSample {
		ss.Istio = series
		return ss
	}
	cases := []struct {
		name  string
		snap  func(t *testing.T) *Snapshot
		want  []string
		check func(t *testing.T, fs []Finding)
	}{
		{"upstream certificate names another identity", func(t *testing.T) *Snapshot {
			return fxOne(fxSample(nil, map[string]fxCluster{fxReviews: {values: map[string]float64{"ssl_fail_verify_san": 20, "ssl_handshake": 80}}}))
		}, []string{"MESH0801"}, func(t *testing.T, fs []Finding) {
			if fs[0].Severity != SeverityError || !strings.Contains(fs[0].Explanation, "identity") || !strings.Contains(fs[0].Title, "20%") {
				t.Errorf("got %s %q: %s", fs[0].Severity, fs[0].Title, fs[0].Explanation)
			}
		}},
		{"a few failed handshakes among many are noise", func(t *testing.T) *Snapshot {
			return fxOne(fxSample(nil, map[string]fxCluster{fxReviews: {values: map[string]float64{"ssl_connection_error": 3, "ssl_handshake": 1000}}}))
		}, nil, nil},
		{"callers without a client certificate on the inbound listener", func(t *testing.T) *Snapshot {
			return fxOne(fxSample(map[string]float64{"listener_0_0_0_0_15006_ssl_fail_verify_no_cert": 50, "listener_0_0_0_0_15006_ssl_handshake": 950, "listener_manager_lds_update_success": 3}, nil))
		}, []string{"MESH0801"}, func(t *testing.T, fs []Finding) {
			f := fs[0]
			if f.Subject != (Subject{Kind: SubjectListener, Name: "0.0.0.0:15006"}) || f.Severity != SeverityWarning || !strings.Contains(f.Explanation, "client certificate") {
				t.Errorf("got %v %s: %s", f.Subject, f.Severity, f.Explanation)
			}
		}},
		{"failures that stopped before the window are not reported", func(t *testing.T) *Snapshot {
			c := map[string]fxCluster{fxReviews: {values: map[string]float64{"ssl_connection_error": 40, "ssl_handshake": 100}}}
			c2 := map[string]fxCluster{fxReviews: {values: map[string]float64{"ssl_connection_error": 40, "ssl_handshake": 160}}}
			return fxTwo(fxSample(nil, c), fxSample(nil, c2))
		}, nil, nil},
		{"mTLS forced toward pods without a sidecar", func(t *testing.T) *Snapshot {
			s := fxOne(fxSample(nil, map[string]fxCluster{fxReviews: {values: map[string]float64{"ssl_connection_error": 12, "upstream_rq_total": 12}}}))
			s.Config = fxModeConfig(envoyadmin.TLSModeIstioMutual, 0, 3)
			return s
		}, []string{"MESH0802"}, func(t *testing.T, fs []Finding) {
			if !strings.Contains(fs[0].Fix.YAML, "mode: DISABLE") {
				t.Errorf("fix %q", fs[0].Fix.YAML)
			}
		}},
		{"mTLS forced toward a subset whose endpoints lack the label: the caveat of PeerAuthentication DISABLE", func(t *testing.T) *Snapshot {
			const v1 = "outbound|9080|v1|reviews.default.svc.cluster.local"
			s := fxOne(fxSample(nil, map[string]fxCluster{v1: {values: map[string]float64{"ssl_connection_error": 12, "upstream_rq_total": 12}}}))
			s.Config = fxModeConfig(envoyadmin.TLSModeIstioMutual, 0, 3)
			s.Config.Clusters[0].Name, s.Config.Endpoints[0].Cluster = envoyadmin.ParseClusterName(v1), v1
			return s
		}, []string{"MESH0802"}, func(t *testing.T, fs []Finding) {
			if !strings.Contains(fs[0].Explanation, "PeerAuthentication DISABLE: those take only plaintext") {
				t.Errorf("%s", fs[0].Explanation)
			}
		}},
		{"mTLS forced toward pods without a sidecar, before any request: a latent mismatch", func(t *testing.T) *Snapshot {
			s := fxOne(fxSample(nil, map[string]fxCluster{fxReviews: {values: map[string]float64{"upstream_rq_total": 0, "upstream_cx_total": 0}}}))
			s.Config = fxModeConfig(envoyadmin.TLSModeIstioMutual, 0, 3)
			return s
		}, []string{"MESH0802"}, func(t *testing.T, fs []Finding) {
			f := fs[0]
			if f.Severity != SeverityWarning || f.Impact != 0 || !strings.Contains(f.Title, "no request has failed yet") ||
				!strings.Contains(f.Explanation, "the first request will fail") || !strings.Contains(f.Fix.YAML, "mode: DISABLE") ||
				!fxHasEvidence(f, "requests to the cluster seen", "upstream_rq_total") {
				t.Errorf("%s impact %v %q %+v\n%s", f.Severity, f.Impact, f.Title, f.Evidence, f.Explanation)
			}
		}},
		{"mTLS forced toward pods without a sidecar whose requests succeed: something answers mTLS", func(t *testing.T) *Snapshot {
			s := fxOne(fxSample(nil, map[string]fxCluster{fxReviews: {values: map[string]float64{"upstream_rq_total": 500, "ssl_handshake": 20}}}))
			s.Config = fxModeConfig(envoyadmin.TLSModeIstioMutual, 0, 3)
			return s
		}, nil, nil},
		{"mTLS forced toward a ServiceEntry host's endpoints: their labels are the user's", func(t *testing.T) *Snapshot {
			cfg := fxModeConfig(envoyadmin.TLSModeIstioMutual, 0, 2)
			const vm = "outbound|8080||billing.internal.example.com"
			cfg.Clusters[0].Name, cfg.Endpoints[0].Cluster = envoyadmin.ParseClusterName(vm), vm
			return &Snapshot{Now: fxNow, Config: cfg}
		}, nil, nil},
		{"mTLS to endpoints reached through an HBONE tunnel", func(t *testing.T) *Snapshot {
			cfg := fxModeConfig(envoyadmin.TLSModeIstioMutual, 0, 1)
			cfg.Endpoints[0].Endpoints[0].Address = "envoy://connect_originate/10.0.2.1:9080"
			return &Snapshot{Now: fxNow, Config: cfg}
		}, nil, nil},
		{"handshake failures the access log shows as TLS connect errors are the connect rule's", func(t *testing.T) *Snapshot {
			s := fxOne(fxSample(nil, map[string]fxCluster{fxReviews: {values: map[string]float64{"ssl_fail_verify_error": 30, "ssl_handshake": 10}}}))
			s.AccessLog = fxLog(t, fxIstioLine(503, "UF", "upstream_reset_before_response_started{connection_failure,TLS_error:_CERTIFICATE_VERIFY_FAILED}", "TLS_error:_CERTIFICATE_VERIFY_FAILED", fxReviews, "10.0.1.1:9080", 3, -1))
			return s
		}, nil, nil},
		{"failing handshakes while the proxy's own certificate has expired are the CertExpiryRule's", func(t *testing.T) *Snapshot {
			s := fxOne(fxSample(map[string]float64{"listener_0_0_0_0_15006_ssl_connection_error": 40, "listener_0_0_0_0_15006_ssl_handshake": 10},
				map[string]fxCluster{fxReviews: {values: map[string]float64{"ssl_connection_error": 30, "ssl_handshake": 10}}}))
			s.Certs = []envoyadmin.Cert{{Secret: "default", SerialNumber: "1", SubjectAltNames: []string{"spiffe://cluster.local/ns/default/sa/productpage"}, NotAfter: fxNow.Add(-time.Hour)}}
			return s
		}, nil, nil},
		{"TLS answered in plaintext", func(t *testing.T) *Snapshot {
			s := &Snapshot{Now: fxNow}
			s.AccessLog = fxLog(t, fxIstioLine(503, "UF,URX", "upstream_reset_before_response_started{connection_failure,TLS_error:_268435703:SSL_routines:OPENSSL_internal:WRONG_VERSION_NUMBER}", "TLS_error:_268435703:SSL_routines:OPENSSL_internal:WRONG_VERSION_NUMBER", fxReviews, "10.0.1.1:9080", 3, -1))
			return s
		}, []string{"MESH0802"}, nil},
		{"STRICT listener refusing plaintext callers", func(t *testing.T) *Snapshot {
			s := fxOne(fxSample(map[string]float64{"listener_0_0_0_0_15006_no_filter_chain_match": 30}, nil))
			s.Config = &envoyadmin.ConfigSummary{Listeners: []envoyadmin.ListenerConfig{fxInbound("STRICT")}}
			s.AccessLog = fxLog(t, fxFilterChainNotFound)
			return s
		}, []string{"MESH0802"}, func(t *testing.T, fs []Finding) {
			if fs[0].Severity != SeverityError || len(fs[0].Evidence) != 3 || !strings.Contains(fs[0].Fix.YAML, "PERMISSIVE") {
				t.Errorf("got %s with %d evidence lines, YAML %q", fs[0].Severity, len(fs[0].Evidence), fs[0].Fix.YAML)
			}
		}},
		{"no filter chain on a PERMISSIVE listener is not an mTLS mismatch", func(t *testing.T) *Snapshot {
			s := &Snapshot{Now: fxNow, Config: &envoyadmin.ConfigSummary{Listeners: []envoyadmin.ListenerConfig{fxInbound("PERMISSIVE")}}}
			s.AccessLog = fxLog(t, fxFilterChainNotFound)
			return s
		}, nil, nil},
		{"no filter chain without a config dump is reported as likely", func(t *testing.T) *Snapshot {
			return &Snapshot{Now: fxNow, AccessLog: fxLog(t, fxFilterChainNotFound)}
		}, []string{"MESH0802"}, func(t *testing.T, fs []Finding) {
			if fs[0].Severity != SeverityWarning || !strings.Contains(fs[0].Explanation, "not confirmed") {
				t.Errorf("got %s: %s", fs[0].Severity, fs[0].Explanation)
			}
		}},
		{"plaintext requests through a PERMISSIVE listener", func(t *testing.T) *Snapshot {
			s := fxOne(withIstio(fxSample(nil, nil), fxPlaintextMetrics(40, 400)))
			s.Config = &envoyadmin.ConfigSummary{Listeners: []envoyadmin.ListenerConfig{fxInbound("PERMISSIVE")}}
			return s
		}, []string{"MESH0803"}, func(t *testing.T, fs []Finding) {
			f := fs[0]
			found := false
			for _, e := range f.Evidence {
				found = found || strings.Contains(e.Label, "batch/legacy-client")
			}
			if !found || f.Severity != SeverityInfo || !strings.Contains(f.Fix.YAML, "mode: STRICT") {
				t.Errorf("got %s %+v YAML %q", f.Severity, f.Evidence, f.Fix.YAML)
			}
		}},
		{"plaintext counts from before STRICT are not reported", func(t *testing.T) *Snapshot {
			s := fxOne(withIstio(fxSample(nil, nil), fxPlaintextMetrics(40, 400)))
			s.Config = &envoyadmin.ConfigSummary{Listeners: []envoyadmin.ListenerConfig{fxInbound("STRICT")}}
			return s
		}, nil, nil},
		{"no new plaintext requests over the window", func(t *testing.T) *Snapshot {
			return fxTwo(withIstio(fxSample(nil, nil), fxPlaintextMetrics(40, 400)), withIstio(fxSample(nil, nil), fxPlaintextMetrics(40, 460)))
		}, nil, nil},
		{"healthy: handshakes succeed and every request is mTLS", func(t *testing.T) *Snapshot {
			s := fxOne(withIstio(fxSample(map[string]float64{"listener_0_0_0_0_15006_ssl_handshake": 500},
				map[string]fxCluster{fxReviews: {values: map[string]float64{"ssl_handshake": 300, "upstream_rq_total": 3000}}}), fxPlaintextMetrics(0, 400)))
			s.Config = fxModeConfig(envoyadmin.TLSModeAuto, 2, 1, fxInbound("STRICT"))
			return s
		}, nil, nil},
		{"no evidence at all", func(t *testing.T) *Snapshot { return &Snapshot{} }, nil, nil},
		{"real capture: Emissary's TLS listener with only successful handshakes", func(t *testing.T) *Snapshot {
			return fxOne(fxCaptureStats(t, "stats_text/emissary-envoy-stats-with-histograms.txt"))
		}, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := fxRun(t, MTLSRule{}, tc.snap(t))
			if got := fxCodes(fs); !reflect.DeepEqual(got, append([]string{}, tc.want...)) {
				t.Fatalf("codes %v, want %v: %+v", got, tc.want, fs)
			}
			if tc.check != nil {
				tc.check(t, fs)
			}
		})
	}
}

func TestListenerAddress(t *testing.T) {
	for in, want := range map[string]string{"0_0_0_0_15006": "0.0.0.0:15006", "10_1_2_3_8443": "10.1.2.3:8443", "admin": "admin", "[__]_15006": "[__]_15006"} {
		if got := listenerAddress(in); got != want {
			t.Errorf("listenerAddress(%q) = %q, want %q", in, got, want)
		}
	}
}
