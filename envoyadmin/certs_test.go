package envoyadmin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// The Istio capture: a "default" workload secret whose chain holds the leaf and the
// cluster.local CA, a "ROOTCA" validation context, a redacted private key and a warming secret
// with no data.
func istioCaptureCerts(t *testing.T) []Cert {
	rootCA := Cert{
		SerialNumber:        "0193a543fe2b0d9cd4847675394dfc54",
		Subject:             "O=cluster.local",
		NotBefore:           mustTime(t, "2023-05-05T03:41:33Z"),
		NotAfter:            mustTime(t, "2033-05-02T03:41:33Z"),
		DaysUntilExpiration: -1,
	}
	chainCA, trustCA := rootCA, rootCA
	chainCA.Secret = "default"
	trustCA.Secret, trustCA.CA = "ROOTCA", true
	return []Cert{
		{
			Secret:              "default",
			SerialNumber:        "6fbee254c22900615cb1f74e3d2f1713",
			SubjectAltNames:     []string{"spiffe://cluster.local/ns/ambient/sa/namespace-istio-waypoint"},
			NotBefore:           mustTime(t, "2023-05-15T01:30:52Z"),
			NotAfter:            mustTime(t, "2023-05-16T01:32:52Z"),
			DaysUntilExpiration: -1,
		},
		chainCA,
		trustCA,
	}
}

func TestParseCertsCapture(t *testing.T) {
	for _, file := range captures.Files(t, "certs") {
		if !strings.HasSuffix(file, ".json") {
			continue
		}
		t.Run(file, func(t *testing.T) {
			rel := "certs/" + file[strings.LastIndex(file, "/")+1:]
			if _, err := ParseCerts(captures.Read(t, rel)); err != nil {
				t.Error(err)
			}
		})
	}

	data := captures.Read(t, "certs/istio-secrets-config-dump-sds.json")
	got, err := ParseCerts(data)
	if err != nil {
		t.Fatal(err)
	}
	want := istioCaptureCerts(t)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseCerts(capture) =\n%+v\nwant\n%+v", got, want)
	}
	leaf := got[0]
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life != 24*time.Hour+2*time.Minute {
		t.Errorf("leaf lifetime = %v, want Istio's 24h (+2m backdating)", life)
	}

	// The same section handed over by the config dump parser.
	var doc struct{ Configs []json.RawMessage }
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	section, err := CertsFromSecretsDump(doc.Configs[0])
	if err != nil || !reflect.DeepEqual(section, want) {
		t.Errorf("CertsFromSecretsDump = %+v, %v", section, err)
	}
	// A SecretsConfigDump on its own.
	alone, err := ParseCerts(doc.Configs[0])
	if err != nil || !reflect.DeepEqual(alone, want) {
		t.Errorf("ParseCerts(section) = %+v, %v", alone, err)
	}
	out, _ := json.Marshal(got)
	if strings.Contains(string(out), "redacted") || strings.Contains(string(out), "W3JlZGFjdGVkXQ") {
		t.Error("a private key made it into the certificates")
	}
}

// adminCertsDoc is GET /certs in the shape Envoy documents (admin.v3.Certificates): int64 as
// JSON strings, timestamps as RFC 3339.
const adminCertsDoc = `{
 "certificates": [
  {
   "ca_cert": [
    {
     "path": "/etc/certs/root-cert.pem",
     "serial_number": "0193A543FE2B0D9CD4847675394DFC54",
     "subject_alt_names": [],
     "days_until_expiration": "3650",
     "valid_from": "2023-05-05T03:41:33Z",
     "expiration_time": "2033-05-02T03:41:33Z"
    }
   ],
   "cert_chain": [
    {
     "path": "\u003cinline\u003e",
     "serial_number": "6fbee254c22900615cb1f74e3d2f1713",
     "subject_alt_names": [
      {"uri": "spiffe://cluster.local/ns/default/sa/sleep"},
      {"dns": "sleep.default.svc"},
      {"ip_address": "10.0.0.1"}
     ],
     "days_until_expiration": "0",
     "valid_from": "2023-05-15T01:30:52Z",
     "expiration_time": "2023-05-16T01:32:52Z"
    }
   ]
  },
  {"ca_cert": [], "cert_chain": []}
 ]
}`

func TestParseCertsAdminEndpoint(t *testing.T) {
	got, err := ParseCerts([]byte(adminCertsDoc))
	if err != nil {
		t.Fatal(err)
	}
	want := []Cert{
		{
			Secret: "/etc/certs/root-cert.pem", CA: true, SerialNumber: "0193a543fe2b0d9cd4847675394dfc54",
			NotBefore: mustTime(t, "2023-05-05T03:41:33Z"), NotAfter: mustTime(t, "2033-05-02T03:41:33Z"),
			DaysUntilExpiration: 3650,
		},
		{
			Secret: "<inline>", SerialNumber: "6fbee254c22900615cb1f74e3d2f1713",
			SubjectAltNames: []string{"spiffe://cluster.local/ns/default/sa/sleep", "sleep.default.svc", "10.0.0.1"},
			NotBefore:       mustTime(t, "2023-05-15T01:30:52Z"), NotAfter: mustTime(t, "2023-05-16T01:32:52Z"),
			DaysUntilExpiration: 0,
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseCerts(/certs) =\n%+v\nwant\n%+v", got, want)
	}
	// Older Envoy printed days_until_expiration as a number; absent means unknown.
	got, err = ParseCerts([]byte(`{"certificates":[{"cert_chain":[{"path":"a","days_until_expiration":12}]},{"ca_cert":[{"path":"b"}]}]}`))
	if err != nil || len(got) != 2 || got[0].DaysUntilExpiration != 12 || got[1].DaysUntilExpiration != -1 || !got[1].CA {
		t.Errorf("ParseCerts(numeric days) = %+v, %v", got, err)
	}
}

// testPKI is a self-signed CA and a leaf it signed, as Istio's CA issues them.
type testPKI struct {
	caPEM, leafPEM, keyPEM []byte
	leaf                   *x509.Certificate
}

func newTestPKI(t *testing.T, now time.Time, leafLife time.Duration) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"cluster.local"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	notBefore := now.Add(-2 * time.Minute) // Istio backdates certificates a little
	if leafLife <= 0 {
		notBefore = now.Add(leafLife - 24*time.Hour)
	}
	spiffe, _ := url.Parse("spiffe://cluster.local/ns/shop/sa/checkout")
	leafTmpl := &x509.Certificate{
		SerialNumber: new(big.Int).SetBytes([]byte{0x00, 0x0a, 0xbc, 0xde, 0xf0}), // leading zero nibble
		NotBefore:    notBefore,
		NotAfter:     now.Add(leafLife),
		URIs:         []*url.URL{spiffe},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	keyDER, _ := x509.MarshalECPrivateKey(leafKey)
	return testPKI{
		caPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		leafPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		leaf:    leaf,
	}
}

// secretsDump builds a SecretsConfigDump like Envoy's, camelCase as some tools print it.
func secretsDump(chain, key []byte, rootInline string) string {
	b64 := base64.StdEncoding.EncodeToString
	return `{"@type":"type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
 "dynamicActiveSecrets":[
  {"name":"default","secret":{"name":"default","tlsCertificate":{
    "certificateChain":{"inlineBytes":"` + b64(chain) + `"},
    "privateKey":{"inlineBytes":"` + b64(key) + `"}}}},
  {"name":"ROOTCA","secret":{"name":"ROOTCA","validationContext":{"trustedCa":{"inlineString":` + rootInline + `}}}}],
 "dynamicWarmingSecrets":[{"name":"file-root:/etc/ssl/ca.pem","secret":{"name":"x","validationContext":{"trustedCa":{"filename":"/etc/ssl/ca.pem"}}}}]}`
}

func TestCertsFromSecretsDumpGenerated(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	tests := []struct {
		name     string
		life     time.Duration
		expired  bool
		leftMin  time.Duration
		leftMax  time.Duration
		daysLeft int
	}{
		{name: "fresh 24h leaf", life: 24 * time.Hour, leftMin: 23*time.Hour + 59*time.Minute, leftMax: 24 * time.Hour, daysLeft: 1},
		{name: "90 day leaf", life: 90 * 24 * time.Hour, leftMin: 89 * 24 * time.Hour, leftMax: 90 * 24 * time.Hour, daysLeft: 90},
		{name: "expired an hour ago", life: -time.Hour, expired: true, leftMin: -time.Hour - time.Minute, leftMax: -time.Hour + time.Minute, daysLeft: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pki := newTestPKI(t, now, tt.life)
			// Istio's chain is leaf then CA; a key block inside the chain must be skipped unread.
			chain := append(append(append([]byte{}, pki.leafPEM...), pki.keyPEM...), pki.caPEM...)
			rootJSON, _ := json.Marshal(string(pki.caPEM))
			doc := secretsDump(chain, []byte("[redacted]"), string(rootJSON))
			got, err := ParseCerts([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 {
				t.Fatalf("got %d certs, want leaf + CA in chain + ROOTCA", len(got))
			}
			leaf := got[0]
			if leaf.Secret != "default" || leaf.CA {
				t.Errorf("leaf secret, CA = %q, %v", leaf.Secret, leaf.CA)
			}
			if want := []string{"spiffe://cluster.local/ns/shop/sa/checkout"}; !reflect.DeepEqual(leaf.SubjectAltNames, want) {
				t.Errorf("SANs = %q, want %q", leaf.SubjectAltNames, want)
			}
			if leaf.SerialNumber != "0abcdef0" {
				t.Errorf("serial = %q, want 0abcdef0", leaf.SerialNumber)
			}
			if !leaf.NotAfter.Equal(pki.leaf.NotAfter) || !leaf.NotBefore.Equal(pki.leaf.NotBefore) {
				t.Errorf("validity = %v..%v", leaf.NotBefore, leaf.NotAfter)
			}
			left := leaf.NotAfter.Sub(now)
			if left < tt.leftMin || left > tt.leftMax {
				t.Errorf("time left = %v, want %v..%v", left, tt.leftMin, tt.leftMax)
			}
			if days := int(leaf.NotAfter.Sub(now).Hours() / 24); tt.daysLeft >= 0 && days != tt.daysLeft {
				t.Errorf("whole days left = %d, want %d", days, tt.daysLeft)
			}
			if leaf.NotAfter.Before(now) != tt.expired {
				t.Errorf("expired = %v, want %v", leaf.NotAfter.Before(now), tt.expired)
			}
			if ca := got[1]; ca.Secret != "default" || ca.CA || ca.Subject != "O=cluster.local" || ca.SerialNumber != "01" {
				t.Errorf("chain CA = %+v", ca)
			}
			if root := got[2]; root.Secret != "ROOTCA" || !root.CA || root.Subject != "O=cluster.local" {
				t.Errorf("ROOTCA = %+v", root)
			}
			out, _ := json.Marshal(got)
			if strings.Contains(string(out), "PRIVATE") || strings.Contains(string(out), "redacted") {
				t.Error("key material in the certificates")
			}
		})
	}
}

func TestParseCertsErrors(t *testing.T) {
	pki := newTestPKI(t, time.Now(), time.Hour)
	tests := []struct {
		name      string
		in        string
		wantCerts int
	}{
		{name: "not JSON", in: `certs`},
		{name: "unknown document", in: `{"foo":1}`},
		{name: "array", in: `[]`},
		{name: "bad base64 beside a good secret", in: `{"dynamic_active_secrets":[
			{"name":"bad","secret":{"tls_certificate":{"certificate_chain":{"inline_bytes":"!!!"}}}},
			{"name":"good","secret":{"tls_certificate":{"certificate_chain":{"inline_bytes":"` + base64.StdEncoding.EncodeToString(pki.leafPEM) + `"}}}}]}`,
			wantCerts: 1},
		{name: "base64 of something that is not PEM", in: `{"static_secrets":[{"name":"s","secret":{"validation_context":{"trusted_ca":{"inline_bytes":"aGVsbG8="}}}}]}`},
		{name: "corrupt certificate", in: `{"static_secrets":[{"name":"s","secret":{"validation_context":{"trusted_ca":{"inline_string":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}}}}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCerts([]byte(tt.in))
			if err == nil {
				t.Errorf("no error; certs %+v", got)
			}
			if len(got) != tt.wantCerts {
				t.Errorf("got %d certs with the error, want %d", len(got), tt.wantCerts)
			}
		})
	}
	// A config dump with no secrets section has no certificates, and that is not an error.
	got, err := ParseCerts([]byte(`{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.BootstrapConfigDump"}]}`))
	if err != nil || len(got) != 0 {
		t.Errorf("config dump without secrets = %+v, %v", got, err)
	}
}

// Whole config dumps of four meshes: ParseCerts finds their SecretsConfigDump, if any.
func TestParseCertsWholeConfigDumps(t *testing.T) {
	tests := []struct {
		file      string
		count     int
		firstName string
		firstCA   bool
		firstSAN  string
	}{
		{"consul-k8s-connect-sidecar.json", 2, "default", false, "spiffe://cluster.local/ns/foo/sa/default"},
		{"istio-1.21-sidecar-full-with-eds-sds.json", 3, "default", false, "spiffe://cluster.local/ns/ambient/sa/namespace-istio-waypoint"},
		{"istio-echo-sidecar-2020-v3-mixed.json", 0, "", false, ""},
		{"istio-endpoints-config-dump.json", 0, "", false, ""},
		{"kuma-envoy-1.19-dataplane.json", 1, "cp_validation_ctx", true, "Ilas-MacBook-Pro.local"},
		{"osm-envoy-1.19-httpbin-sidecar.json", 3, "service-cert:httpbin/httpbin", false, "httpbin.httpbin.cluster.local"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseCerts(captures.Read(t, "config_dump/"+tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.count {
				t.Fatalf("%d certs, want %d", len(got), tt.count)
			}
			if tt.count == 0 {
				return
			}
			first := got[0]
			if first.Secret != tt.firstName || first.CA != tt.firstCA || len(first.SubjectAltNames) == 0 ||
				first.SubjectAltNames[0] != tt.firstSAN || first.NotAfter.IsZero() {
				t.Errorf("first cert = %+v", first)
			}
		})
	}
}
