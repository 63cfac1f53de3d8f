package diagnose

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

const fxDetailsAuto = "outbound|9080||details.default.svc.cluster.local"

// fxPlaintext is a proxy whose cluster c, in TLS mode mode, got total requests over a 30s
// window, cut of them cut off before a response (upstream_cx_destroy_remote_with_active_rq).
// Its three endpoints carry no tlsMode metadata, as istiod sends them under a DestinationRule's
// DISABLE or SIMPLE; a second cluster to details uses auto mTLS, Istio's default.
func fxPlaintext(c, mode string, total, cut float64) *Snapshot {
	values := func(rq, uc float64) map[string]fxCluster {
		return map[string]fxCluster{c: {values: map[string]float64{"upstream_rq_total": rq, "upstream_cx_destroy_remote_with_active_rq": uc}}}
	}
	s := fxTwo(fxSample(nil, values(40000, 12)), fxSample(nil, values(40000+total, 12+cut)))
	s.Meta = Meta{Pod: "productpage-v1-abc", Namespace: "default"}
	s.Config = fxModeConfig(mode, 0, 3)
	s.Config.Clusters[0].Name, s.Config.Endpoints[0].Cluster = envoyadmin.ParseClusterName(c), c
	s.Config.Clusters = append(s.Config.Clusters, envoyadmin.ClusterConfig{Name: envoyadmin.ParseClusterName(fxDetailsAuto), TLSMode: envoyadmin.TLSModeAuto})
	return s
}

const fxUCDetails = "upstream_reset_before_response_started{connection_termination}"

func TestMTLSRulePlaintext(t *testing.T) {
	ucLine := fxIstioLine(503, "UC", fxUCDetails, "-", fxReviews, "10.0.2.1:9080", 1, -1)
	okLine := fxIstioLine(200, "-", "via_upstream", "-", fxDetailsAuto, "10.0.3.1:9080", 4, 3)
	cases := []struct {
		name  string
		snap  func(t *testing.T) *Snapshot
		want  []string
		check func(t *testing.T, f Finding)
	}{
		{"plaintext to a service of the mesh, every request cut off", func(t *testing.T) *Snapshot {
			return fxPlaintext(fxReviews, envoyadmin.TLSModePlaintext, 300, 300)
		}, []string{"MESH0802"}, func(t *testing.T, f Finding) {
			if f.Severity != SeverityError || f.Impact != 10 || !strings.Contains(f.Title, "100%") ||
				!fxHasEvidence(f, "share of requests cut off before a response over 30s", "upstream_rq_total") ||
				!strings.Contains(f.Explanation, "as this proxy's other service clusters show") ||
				!strings.Contains(f.Explanation, "cannot see the server's side") || !strings.Contains(f.Explanation, "keep-alive race") ||
				!strings.Contains(f.Fix.Command, "kubectl get peerauthentication -A") || !strings.Contains(f.Fix.Command, "istioctl x describe pod <pod of reviews> -n default") ||
				!strings.Contains(f.Fix.YAML, "mode: ISTIO_MUTUAL") || !strings.Contains(f.Fix.Summary, "delete the tls block") {
				t.Errorf("%s impact %v %q %+v\n%s\nfix %+v", f.Severity, f.Impact, f.Title, f.Evidence, f.Explanation, f.Fix)
			}
			if strings.Contains(f.Explanation, "own inbound listener") || strings.Contains(f.Explanation, "still carry tlsMode=istio") {
				t.Errorf("notes without their evidence: %s", f.Explanation)
			}
		}},
		{"the same with this pod's own inbound listener STRICT", func(t *testing.T) *Snapshot {
			s := fxPlaintext(fxReviews, envoyadmin.TLSModePlaintext, 300, 297)
			s.Config.Listeners = []envoyadmin.ListenerConfig{fxInbound("STRICT")}
			return s
		}, []string{"MESH0802"}, func(t *testing.T, f Finding) {
			if !strings.Contains(f.Explanation, "own inbound listener requires mTLS and reviews.default.svc.cluster.local is in the same namespace") {
				t.Errorf("%s", f.Explanation)
			}
		}},
		{"plaintext with 2% cut off is a keep-alive race, not a refusal", func(t *testing.T) *Snapshot {
			return fxPlaintext(fxReviews, envoyadmin.TLSModePlaintext, 300, 6)
		}, nil, nil},
		{"plaintext to a host outside the cluster, every request cut off", func(t *testing.T) *Snapshot {
			return fxPlaintext("outbound|80||legacy.example.com", envoyadmin.TLSModePlaintext, 300, 300)
		}, nil, nil},
		{"healthy plaintext with traffic", func(t *testing.T) *Snapshot {
			return fxPlaintext(fxReviews, envoyadmin.TLSModePlaintext, 300, 0)
		}, nil, nil},
		{"endpoints reached through an HBONE tunnel are not sent plaintext", func(t *testing.T) *Snapshot {
			s := fxPlaintext(fxReviews, envoyadmin.TLSModePlaintext, 300, 300)
			s.Config.Endpoints[0].Endpoints[0].Address = "envoy://connect_originate/10.0.2.1:9080"
			return s
		}, nil, nil},
		{"auto mTLS with every request cut off is not a mode mismatch", func(t *testing.T) *Snapshot {
			return fxPlaintext(fxReviews, envoyadmin.TLSModeAuto, 300, 300)
		}, nil, nil},
		{"one-way TLS whose handshakes all fail", func(t *testing.T) *Snapshot {
			s := fxPlaintext(fxReviews, envoyadmin.TLSModeSimple, 0, 0)
			setSSL := func(ss *envoyadmin.StatsSample, v float64) { ss.Clusters[fxReviews].Values["ssl_connection_error"] = v }
			setSSL(s.Stats, 20)
			setSSL(s.Stats2, 320)
			return s
		}, []string{"MESH0802"}, func(t *testing.T, f Finding) {
			if !strings.Contains(f.Explanation, "tls.mode SIMPLE") || !fxHasEvidence(f, "ssl.connection_error", "ssl_connection_error") ||
				!strings.Contains(f.Fix.Command, "sets tls.mode SIMPLE") {
				t.Errorf("%+v\n%s\n%s", f.Evidence, f.Explanation, f.Fix.Command)
			}
		}},
		{"a subset whose endpoints still carry tlsMode=istio under the DestinationRule's DISABLE", func(t *testing.T) *Snapshot {
			const v1 = "outbound|9080|v1|reviews.default.svc.cluster.local"
			s := fxPlaintext(v1, envoyadmin.TLSModePlaintext, 300, 300)
			s.Config.Endpoints[0].Endpoints[0].TLSMode = "istio"
			return s
		}, []string{"MESH0802"}, func(t *testing.T, f Finding) {
			if !strings.Contains(f.Explanation, "1 of the subset's 3 endpoints still carry tlsMode=istio") {
				t.Errorf("%s", f.Explanation)
			}
		}},
		{"without cluster stats: istio_requests_total from this proxy", func(t *testing.T) *Snapshot {
			series := func(ok, uc float64) *envoyadmin.StatsSample {
				ss := fxSample(nil, nil)
				to := []string{"reporter", "source", "destination_service", "reviews.default.svc.cluster.local"}
				ss.Istio = []envoyadmin.IstioSeries{
					fxIstio("istio_requests_total", ok, append(to, "response_code", "200", "response_flags", "-")...),
					fxIstio("istio_requests_total", uc, append(to, "response_code", "503", "response_flags", "UC")...),
				}
				return ss
			}
			s := fxPlaintext(fxReviews, envoyadmin.TLSModePlaintext, 0, 0)
			s.Stats, s.Stats2 = series(70000, 2000), series(70000, 2600)
			return s
		}, []string{"MESH0802"}, func(t *testing.T, f Finding) {
			if !fxHasEvidence(f, "share of requests cut off before a response over 30s", "istio_requests_total reporter=source") || f.Impact != 20 {
				t.Errorf("impact %v %+v", f.Impact, f.Evidence)
			}
		}},
		{"only an access log that records successes too", func(t *testing.T) *Snapshot {
			s := &Snapshot{Now: fxNow, Config: fxPlaintext(fxReviews, envoyadmin.TLSModePlaintext, 0, 0).Config}
			s.AccessLog = fxLog(t, okLine, ucLine, ucLine, ucLine, okLine, ucLine, ucLine, ucLine)
			return s
		}, []string{"MESH0802"}, func(t *testing.T, f Finding) {
			if !fxHasEvidence(f, "share of requests cut off before a response in the access log", "access.log lines of the cluster") {
				t.Errorf("%+v", f.Evidence)
			}
		}},
		{"an access log of errors only cannot tell the share", func(t *testing.T) *Snapshot {
			s := &Snapshot{Now: fxNow, Config: fxPlaintext(fxReviews, envoyadmin.TLSModePlaintext, 0, 0).Config}
			s.AccessLog = fxLog(t, ucLine, ucLine, ucLine, ucLine, ucLine, ucLine)
			return s
		}, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := fxRun(t, MTLSRule{}, tc.snap(t))
			if got := fxCodes(fs); !reflect.DeepEqual(got, append([]string{}, tc.want...)) {
				t.Fatalf("codes %v, want %v: %+v", got, tc.want, fs)
			}
			if tc.check != nil {
				tc.check(t, fs[0])
			}
		})
	}
}

// The keep-alive race rule leaves plaintext that is refused to the MTLSRule, and keeps a small
// share of cut-off requests to a plaintext service, with a note on what would tell the two apart.
func TestUpstreamResetRulePlaintext(t *testing.T) {
	refused := fxPlaintext(fxReviews, envoyadmin.TLSModePlaintext, 300, 300)
	if fs := fxRun(t, UpstreamResetRule{}, refused); len(fs) != 0 {
		t.Errorf("refused plaintext: want no finding, got %+v", fs)
	}
	race := fxPlaintext(fxReviews, envoyadmin.TLSModePlaintext, 300, 6)
	fs := fxRun(t, UpstreamResetRule{}, race)
	if got := fxCodes(fs); !reflect.DeepEqual(got, []string{string(CodeKeepAliveRace)}) {
		t.Fatalf("race: codes %v", got)
	}
	if !strings.Contains(fs[0].Explanation, "here 2% of requests fail over 30s, so that is not the cause") {
		t.Errorf("race: %s", fs[0].Explanation)
	}
	few := fxPlaintext(fxReviews, envoyadmin.TLSModePlaintext, 3, 3)
	fs = fxRun(t, UpstreamResetRule{}, few)
	if len(fs) != 1 || !strings.Contains(fs[0].Explanation, "here 3 of 3 requests over 30s failed, too few to tell") {
		t.Errorf("few requests: %+v", fs)
	}
	unknown := &Snapshot{Now: fxNow, Config: race.Config, AccessLog: fxLog(t, fxIstioLine(503, "UC", fxUCDetails, "-", fxReviews, "10.0.2.1:9080", 1, -1))}
	fs = fxRun(t, UpstreamResetRule{}, unknown)
	if len(fs) != 1 || !strings.Contains(fs[0].Explanation, "does not show what share of requests fail") {
		t.Errorf("errors-only log: %+v", fs)
	}
}
