package diagnose

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

func TestCertExpiryRule(t *testing.T) {
	// The capture's workload certificate runs from 2023-05-15T01:30:52Z to 2023-05-16T01:32:52Z
	// (24h2m); its root, in the chain and as ROOTCA, until 2033-05-02T03:41:33Z.
	real := func(t *testing.T, now string) *Snapshot {
		certs, err := envoyadmin.ParseCerts(captures.Read(t, "certs/istio-secrets-config-dump-sds.json"))
		if err != nil {
			t.Fatal(err)
		}
		at, _ := time.Parse(time.RFC3339, now)
		return &Snapshot{Certs: certs, CertsFile: "config_dump.json", Now: at}
	}
	leaf := func(notBefore, notAfter time.Time) *Snapshot {
		return &Snapshot{Now: fxNow, Certs: []envoyadmin.Cert{{Secret: "default", SerialNumber: "1", SubjectAltNames: []string{"spiffe://cluster.local/ns/default/sa/reviews"}, NotBefore: notBefore, NotAfter: notAfter}}}
	}
	gateway := func(left time.Duration) *Snapshot {
		return &Snapshot{Now: fxNow, Certs: []envoyadmin.Cert{{Secret: "kubernetes://bookinfo-cert", SerialNumber: "2", SubjectAltNames: []string{"bookinfo.example.com"}, NotBefore: fxNow.Add(left - 90*24*time.Hour), NotAfter: fxNow.Add(left)}}}
	}
	// /certs names every Istio secret <inline>; the config dump names them default and ROOTCA.
	inline := func(withDump bool) *Snapshot {
		// DaysUntilExpiration -1: absent, as for secrets read from a config dump.
		leafCert := envoyadmin.Cert{Secret: "<inline>", SerialNumber: "7e41", SubjectAltNames: []string{"spiffe://cluster.local/ns/default/sa/reviews"}, NotBefore: fxNow.Add(-26 * time.Hour), NotAfter: fxNow.Add(-2 * time.Hour), DaysUntilExpiration: -1}
		root := envoyadmin.Cert{Secret: "<inline>", CA: true, SerialNumber: "3f1c", NotBefore: fxNow.Add(-24 * time.Hour), NotAfter: fxNow.Add(20 * 24 * time.Hour), DaysUntilExpiration: -1}
		s := &Snapshot{Now: fxNow, NowSource: NowFromMeta, CertsFile: "certs.json", Certs: []envoyadmin.Cert{root, leafCert, root}}
		if withDump {
			named := func(c envoyadmin.Cert, secret string) envoyadmin.Cert { c.Secret = secret; return c }
			s.Config = &envoyadmin.ConfigSummary{Secrets: []envoyadmin.Cert{named(leafCert, "default"), named(root, "default"), named(root, "ROOTCA")}}
		}
		return s
	}
	clockOnly := func(s *Snapshot) *Snapshot {
		s.NowSource = NowFromClock
		return s
	}
	cases := []struct {
		name  string
		snap  func(t *testing.T) *Snapshot
		want  []string
		check func(t *testing.T, fs []Finding)
	}{
		{"/certs says <inline>: the config dump's SDS secret names it", func(t *testing.T) *Snapshot { return inline(true) }, []string{"MESH0901", "MESH0902"}, func(t *testing.T, fs []Finding) {
			names := map[string]string{}
			for _, f := range fs {
				names[f.Code] = f.Subject.Name
				if f.Evidence[0].Label != "secret" || strings.Contains(f.Evidence[0].Text, "<inline>") || !strings.Contains(f.Evidence[0].Source, "config_dump.json SDS secret") {
					t.Errorf("%s secret evidence %+v", f.Code, f.Evidence[0])
				}
			}
			if names["MESH0902"] != "default (spiffe://cluster.local/ns/default/sa/reviews)" || names["MESH0901"] != "ROOTCA" {
				t.Errorf("subjects %v", names)
			}
		}},
		{"/certs alone: named by what the certificate is", func(t *testing.T) *Snapshot { return inline(false) }, []string{"MESH0901", "MESH0902"}, func(t *testing.T, fs []Finding) {
			for _, f := range fs {
				if want := map[string]string{"MESH0902": "workload certificate (spiffe://cluster.local/ns/default/sa/reviews)", "MESH0901": "root certificate"}[f.Code]; f.Subject.Name != want {
					t.Errorf("%s subject %q, want %q", f.Code, f.Subject.Name, want)
				}
			}
		}},
		{"capture time known: judged against it, and said so", func(t *testing.T) *Snapshot { return inline(true) }, []string{"MESH0901", "MESH0902"}, func(t *testing.T, fs []Finding) {
			f := fxFindCode(t, fs, "MESH0902")
			if f.Title != "The proxy's workload certificate expired 2h0m before the capture" || !fxHasEvidence(f, "expiry judged against", "meta.json capture time") || !fxHasEvidence(f, "expired before the capture by", "capture time minus NotAfter") {
				t.Errorf("%q %+v", f.Title, f.Evidence)
			}
		}},
		{"no capture time: expired against the current time, worded so", func(t *testing.T) *Snapshot { return clockOnly(inline(true)) }, []string{"MESH0901", "MESH0902"}, func(t *testing.T, fs []Finding) {
			f := fxFindCode(t, fs, "MESH0902")
			if f.Severity != SeverityError || f.Title != "The proxy's workload certificate has expired (judged against the current time; the capture time is unknown)" ||
				!fxHasEvidence(f, "expired before the current time by", "current time minus NotAfter (the folder has no meta.json capture time)") || !fxHasEvidence(f, "expiry judged against", NowFromClock) ||
				!strings.Contains(f.Explanation, "judged against the current time") || !strings.Contains(f.Explanation, "If the pod still holds this one") {
				t.Errorf("%s %q %+v\n%s", f.Severity, f.Title, f.Evidence, f.Explanation)
			}
			for _, e := range f.Evidence {
				if strings.Contains(e.Label+e.Source, "capture time minus") || strings.Contains(e.Label, "before the capture") {
					t.Errorf("evidence claims a capture time: %+v", e)
				}
			}
		}},
		{"no capture time: expiring soon is only a note", func(t *testing.T) *Snapshot { return clockOnly(inline(true)) }, []string{"MESH0901", "MESH0902"}, func(t *testing.T, fs []Finding) {
			f := fxFindCode(t, fs, "MESH0901")
			if f.Severity != SeverityInfo || !strings.Contains(f.Title, "(judged against the current time; the capture time is unknown)") || !fxHasEvidence(f, "time left at the current time", "no meta.json capture time") {
				t.Errorf("%s %q %+v", f.Severity, f.Title, f.Evidence)
			}
		}},
		{"no capture time, Envoy's count: judged at the capture, not today", func(t *testing.T) *Snapshot {
			// An old /certs: both certificates lapsed long before today, but Envoy counted 300
			// and 3,000 days left when it answered.
			old := fxNow.Add(-5 * 365 * 24 * time.Hour)
			return &Snapshot{Now: fxNow, NowSource: NowFromClock, CertsFile: "certs.json", Certs: []envoyadmin.Cert{
				{Secret: "default", SerialNumber: "a", SubjectAltNames: []string{"spiffe://cluster.local/ns/default/sa/reviews"}, NotBefore: old, NotAfter: old.Add(365 * 24 * time.Hour), DaysUntilExpiration: 300},
				{Secret: "ROOTCA", CA: true, SerialNumber: "b", NotBefore: old, NotAfter: old.Add(3650 * 24 * time.Hour), DaysUntilExpiration: 3000},
			}}
		}, nil, nil},
		{"no capture time, a short-lived certificate: Envoy's 0 days cannot tell, the clock's expiry is a warning", func(t *testing.T) *Snapshot {
			return &Snapshot{Now: fxNow, NowSource: NowFromClock, CertsFile: "certs.json", Certs: []envoyadmin.Cert{
				{Secret: "<inline>", SerialNumber: "c", SubjectAltNames: []string{"spiffe://example.org/workload"}, NotBefore: fxNow.Add(-49 * time.Hour), NotAfter: fxNow.Add(-48 * time.Hour), DaysUntilExpiration: 0},
			}}
		}, []string{"MESH0902"}, func(t *testing.T, fs []Finding) {
			if fs[0].Severity != SeverityWarning {
				t.Errorf("severity %s", fs[0].Severity)
			}
		}},
		{"no capture time, Envoy's underflowed count: expired at the capture", func(t *testing.T) *Snapshot {
			return &Snapshot{Now: fxNow, NowSource: NowFromClock, CertsFile: "certs.json", Certs: []envoyadmin.Cert{
				{Secret: "default", SerialNumber: "d", SubjectAltNames: []string{"spiffe://cluster.local/ns/default/sa/reviews"}, NotBefore: fxNow.Add(-90 * 24 * time.Hour), NotAfter: fxNow.Add(30 * 24 * time.Hour), DaysUntilExpiration: 18446744073709551613 % (1 << 62)},
			}}
		}, []string{"MESH0902"}, func(t *testing.T, fs []Finding) {
			if fs[0].Severity != SeverityError || !fxHasEvidence(fs[0], "days until expiration, as Envoy counted them at capture", "days_until_expiration") {
				t.Errorf("%s %+v", fs[0].Severity, fs[0].Evidence)
			}
		}},
		{"real capture: fresh workload certificate", func(t *testing.T) *Snapshot { return real(t, "2023-05-15T02:00:00Z") }, nil, nil},
		{"real capture: workload certificate not rotated, under a quarter left", func(t *testing.T) *Snapshot { return real(t, "2023-05-15T20:00:00Z") }, []string{"MESH0901"}, func(t *testing.T, fs []Finding) {
			f := fs[0]
			if !strings.Contains(f.Subject.Name, "spiffe://cluster.local/ns/ambient") || !strings.Contains(f.Fix.Command, "istioctl proxy-config secret") || !strings.Contains(f.Title, "expires in 5h33m") {
				t.Errorf("got %v %q fix %q", f.Subject, f.Title, f.Fix.Command)
			}
		}},
		{"real capture: workload certificate expired", func(t *testing.T) *Snapshot { return real(t, "2023-05-16T03:00:00Z") }, []string{"MESH0902"}, nil},
		{"real capture: root close to expiry, reported once", func(t *testing.T) *Snapshot { return real(t, "2033-04-20T00:00:00Z") }, []string{"MESH0901", "MESH0902"}, func(t *testing.T, fs []Finding) {
			for _, f := range fs {
				if f.Code == "MESH0901" && (f.Subject.Name != "ROOTCA (O=cluster.local)" || !strings.Contains(f.Fix.Summary, "rotation")) {
					t.Errorf("root finding: %v %q", f.Subject, f.Fix.Summary)
				}
			}
		}},
		{"workload certificate without NotBefore and 5h left", func(t *testing.T) *Snapshot { return leaf(time.Time{}, fxNow.Add(5*time.Hour)) }, []string{"MESH0901"}, nil},
		{"workload certificate without NotBefore and 7h left", func(t *testing.T) *Snapshot { return leaf(time.Time{}, fxNow.Add(7*time.Hour)) }, nil, nil},
		{"short-lived workload certificate at half its life is healthy", func(t *testing.T) *Snapshot { return leaf(fxNow.Add(-time.Hour), fxNow.Add(time.Hour)) }, nil, nil},
		{"gateway certificate with 20 of 90 days left", func(t *testing.T) *Snapshot { return gateway(20 * 24 * time.Hour) }, []string{"MESH0901"}, func(t *testing.T, fs []Finding) {
			if !strings.Contains(fs[0].Fix.Command, "kubectl get secret -n <namespace> bookinfo-cert") {
				t.Errorf("fix %q", fs[0].Fix.Command)
			}
		}},
		{"gateway certificate with 25 of 90 days left", func(t *testing.T) *Snapshot { return gateway(25 * 24 * time.Hour) }, nil, nil},
		{"no capture time", func(t *testing.T) *Snapshot {
			s := leaf(time.Time{}, fxNow.Add(-time.Hour))
			s.Now = time.Time{}
			return s
		}, nil, nil},
		{"certificate without NotAfter", func(t *testing.T) *Snapshot { return leaf(time.Time{}, time.Time{}) }, nil, nil},
		{"no certificates", func(t *testing.T) *Snapshot { return &Snapshot{Now: fxNow} }, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := fxRun(t, CertExpiryRule{}, tc.snap(t))
			if got := fxCodes(fs); !reflect.DeepEqual(got, append([]string{}, tc.want...)) {
				t.Fatalf("codes %v, want %v: %+v", got, tc.want, fs)
			}
			if tc.check != nil {
				tc.check(t, fs)
			}
		})
	}
}

// fxFindCode returns the finding with a code, failing the test when there is none.
func fxFindCode(t *testing.T, fs []Finding, code string) Finding {
	t.Helper()
	for _, f := range fs {
		if f.Code == code {
			return f
		}
	}
	t.Fatalf("no %s finding in %+v", code, fs)
	return Finding{}
}

// fxHasEvidence reports whether a finding has an evidence line whose label contains label and
// whose source contains source.
func fxHasEvidence(f Finding, label, source string) bool {
	for _, e := range f.Evidence {
		if strings.Contains(e.Label, label) && strings.Contains(e.Source, source) {
			return true
		}
	}
	return false
}

// certTLSIncident is a proxy whose workload certificate expired 3h before the capture: its
// upstreams reject it (SSLV3_ALERT_CERTIFICATE_EXPIRED), every connect fails, retries run out,
// and callers' handshakes on its inbound listener fail too.
func certTLSIncident(source string) *Snapshot {
	s := upHealthyInterval()
	s.Now, s.NowSource = time.Date(2024, 5, 1, 10, 1, 0, 0, time.UTC), source
	s.Certs = []envoyadmin.Cert{
		{Secret: "default", SerialNumber: "1", SubjectAltNames: []string{"spiffe://cluster.local/ns/default/sa/productpage"}, NotBefore: s.Now.Add(-27 * time.Hour), NotAfter: s.Now.Add(-3 * time.Hour)},
		{Secret: "ROOTCA", CA: true, SerialNumber: "2", Subject: "O=cluster.local", NotBefore: s.Now.Add(-24 * 100 * time.Hour), NotAfter: s.Now.Add(24 * 3000 * time.Hour)},
	}
	s.CertsFile = FileConfigDump
	setCounter(s, upReviews, "ssl_connection_error", 100, 60)
	setCounter(s, upReviews, "upstream_cx_connect_fail", 100, 60)
	setCounter(s, upReviews, "upstream_rq_retry", 60, 40)
	setCounter(s, upReviews, "upstream_rq_retry_limit_exceeded", 30, 20)
	setGlobal(s, "listener_0_0_0_0_15006_ssl_connection_error", 50, 30)
	setGlobal(s, "listener_0_0_0_0_15006_ssl_handshake", 900, 0)
	s.AccessLog = append(s.AccessLog, ufLines(6, upReviews, "10.1.0.11:9080", "TLS_error:|268436501:SSL routines:OPENSSL_internal:SSLV3_ALERT_CERTIFICATE_EXPIRED:TLS_error_end")...)
	return s
}

// TestCertExpiryOutranksItsSymptoms runs every rule on a proxy whose expired certificate makes
// its TLS handshakes fail: the certificate is the cause and must come first, with the TLS
// failures as its evidence and impact, not be outranked by them.
func TestCertExpiryOutranksItsSymptoms(t *testing.T) {
	for _, tc := range []struct {
		name     string
		source   string
		top      string
		deferred bool // the TLS failure findings are folded into MESH0902
	}{
		{"capture time known: the certificate is the cause", NowFromMeta, "MESH0902", true},
		{"live read: the certificate is the cause", "", "MESH0902", true},
		{"capture time unknown: the certificate may have been valid then", NowFromClock, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Diagnose(certTLSIncident(tc.source), Rules())
			if len(r.Findings) == 0 {
				t.Fatal("no finding")
			}
			codes := map[string]bool{}
			for _, f := range r.Findings {
				codes[f.Code] = true
			}
			if tc.top != "" && r.Findings[0].Code != tc.top {
				t.Errorf("top finding %s, want %s:\n%s", r.Findings[0].Code, tc.top, findingList(r))
			}
			if tc.deferred == (codes["MESH0203"] || codes["MESH0801"]) || !codes["MESH0902"] || !codes["MESH0601"] {
				t.Errorf("deferred=%v, findings:\n%s", tc.deferred, findingList(r))
			}
			cert := fxFindCode(t, r.Findings, "MESH0902")
			if tc.deferred {
				// 60 failed handshakes to reviews and 30 on the inbound listener over 30s.
				if cert.Impact != 3 || !fxHasEvidence(cert, "TLS handshakes that failed on this proxy", "listener 0.0.0.0:15006") || !fxHasEvidence(cert, "UF and a TLS error", "access.log") {
					t.Errorf("impact %v evidence %+v", cert.Impact, cert.Evidence)
				}
				retries := fxFindCode(t, r.Findings, "MESH0601")
				if !strings.Contains(retries.Explanation, "MESH0902") {
					t.Errorf("the retries finding does not name the certificate: %s", retries.Explanation)
				}
			} else if cert.Impact != 0 {
				t.Errorf("impact %v without a capture time", cert.Impact)
			}
		})
	}
}

// TestCertExpiryNewConnectionsOnly: an expired certificate fails new mTLS handshakes; connections
// opened before keep working (testdata/incidents/cert-expiry: requests still flow). The finding
// said every mTLS connection fails.
func TestCertExpiryNewConnectionsOnly(t *testing.T) {
	leaf := envoyadmin.Cert{Secret: "default", SerialNumber: "1", SubjectAltNames: []string{"spiffe://cluster.local/ns/default/sa/reviews"}}
	at := func(left time.Duration, source string) *Snapshot {
		c := leaf
		c.NotBefore, c.NotAfter = fxNow.Add(left-24*time.Hour), fxNow.Add(left)
		return &Snapshot{Now: fxNow, NowSource: source, Certs: []envoyadmin.Cert{c}}
	}
	root := envoyadmin.Cert{Secret: "ROOTCA", CA: true, SerialNumber: "2", NotBefore: fxNow.Add(-300 * 24 * time.Hour), NotAfter: fxNow.Add(5 * 24 * time.Hour)}
	for name, s := range map[string]*Snapshot{
		"expiring soon":                    at(time.Hour, NowFromMeta),
		"expired before the capture":       at(-2*time.Hour, NowFromMeta),
		"expired against the current time": at(-2*time.Hour, NowFromClock),
		"CA expiring":                      {Now: fxNow, NowSource: NowFromMeta, Certs: []envoyadmin.Cert{root}},
		"incident cert-expiry":             loadIncident(t, "cert-expiry"),
	} {
		fs := fxRun(t, CertExpiryRule{}, s)
		if len(fs) == 0 {
			t.Fatalf("%s: no finding", name)
		}
		for _, f := range fs {
			if !strings.Contains(f.Explanation, "new mTLS connection") || !strings.Contains(f.Explanation, "keep working") {
				t.Errorf("%s %s: explanation does not say only new connections fail: %s", name, f.Code, f.Explanation)
			}
			if strings.Contains(f.Explanation, "every mTLS connection") || strings.Contains(f.Explanation, "mTLS fails mesh-wide") {
				t.Errorf("%s %s: explanation says every connection fails: %s", name, f.Code, f.Explanation)
			}
		}
	}
}
