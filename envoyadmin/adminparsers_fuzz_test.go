package envoyadmin

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

// seedAdminFuzzFromCaptures seeds f with every capture of an endpoint's folder.
func seedAdminFuzzFromCaptures(f *testing.F, endpoint string) [][]byte {
	var all [][]byte
	for _, file := range captures.Files(f, endpoint) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		captures.Seed(f, data)
		all = append(all, data)
	}
	return all
}

func FuzzParseClustersText(f *testing.F) {
	seedAdminFuzzFromCaptures(f, "clusters_text")
	f.Add([]byte(clustersTextFull))
	f.Add([]byte("c::[::1]:80::health_flags::/failed_outlier_check/failed_eds_health\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseClustersText(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, c := range got.Clusters {
			if c.Name.Raw == "" {
				t.Errorf("cluster without a name: %+v", c)
			}
		}
	})
}

func FuzzParseClustersJSON(f *testing.F) {
	seedAdminFuzzFromCaptures(f, "clusters_json")
	f.Add([]byte(clustersJSONSnake))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseClustersJSON(data)
		if err == nil && got == nil {
			t.Error("nil result without error")
		}
	})
}

func FuzzParseCerts(f *testing.F) {
	seedAdminFuzzFromCaptures(f, "certs")
	f.Add([]byte(adminCertsDoc))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, _ := ParseCerts(data)
		for _, c := range certs {
			if strings.Contains(c.Secret+c.Subject, "PRIVATE KEY") {
				t.Errorf("key material in %+v", c)
			}
		}
	})
}

func FuzzParseServerInfo(f *testing.F) {
	seedAdminFuzzFromCaptures(f, "server_info")
	f.Add([]byte(`{"version":"v","state":1,"uptime_current_epoch":"1.5s","node":{"id":"x","metadata":{"ISTIO_VERSION":"1.22"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseServerInfo(data)
		if err == nil && got == nil {
			t.Error("nil result without error")
		}
	})
}

func FuzzParseAccessLog(f *testing.F) {
	for _, data := range seedAdminFuzzFromCaptures(f, "access_log") {
		for _, line := range strings.Split(string(data), "\n") {
			f.Add([]byte(line))
		}
	}
	f.Add([]byte(`2026-01-01T00:00:00.000000001Z stdout P {"response_code":503,` + "\n" +
		`2026-01-01T00:00:00.000000002Z stdout F "response_flags":"UF"}` + "\n"))
	f.Add([]byte(`status=503 response_flags=UF,URX total_time_ms=- upstream="10.0.0.1:80"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, lineErrs, err := ParseAccessLog(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("a bytes.Reader cannot fail: %v", err)
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		if len(entries)+len(lineErrs) > lines {
			t.Errorf("%d entries and %d errors from %d lines", len(entries), len(lineErrs), lines)
		}
		prev := 0
		for _, e := range entries {
			if e.Line <= prev || e.Line > lines {
				t.Errorf("entry line %d after %d (of %d)", e.Line, prev, lines)
			}
			prev = e.Line
			if e.Code < 0 || e.Duration < -1 || e.UpstreamServiceTime < -1 || e.BytesSent < 0 || e.BytesReceived < 0 {
				t.Errorf("out-of-range values: %+v", e)
			}
		}
	})
}

func FuzzParseResetError(f *testing.F) {
	for _, data := range seedAdminFuzzFromCaptures(f, "access_log") {
		f.Add(data)
	}
	f.Add([]byte("upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote connection failure, transport failure reason: delayed connect error: 111"))
	f.Add([]byte(`"upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: TLS error: 268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := string(data)
		e, ok := ParseResetError(s)
		if !ok && e != (ResetError{}) {
			t.Errorf("not found but %+v", e)
		}
		if strings.ContainsAny(e.Reason+e.TransportFailure, "\r\n") {
			t.Errorf("message ran past its line: %+v", e)
		}
		ParseResponseFlags(s)
		ParseResponseCodeDetails(s)
	})
}
