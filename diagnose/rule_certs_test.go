package diagnose

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/internal/captures"
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
	cases := []struct {
		name  string
		snap  func(t *testing.T) *Snapshot
		want  []string
		check func(t *testing.T, fs []Finding)
	}{
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
