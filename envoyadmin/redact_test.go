package envoyadmin

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// syntheticKey returns a freshly made PEM private key, made for the test and never kept.
func syntheticKey(t *testing.T, pemType string) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}))
}

func jsonString(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRedactConfigDump(t *testing.T) {
	key := syntheticKey(t, "PRIVATE KEY")
	ecKey := syntheticKey(t, "EC PRIVATE KEY")
	keyB64 := base64.StdEncoding.EncodeToString([]byte(key))
	cert := "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUZ\n-----END CERTIFICATE-----\n"
	certB64 := base64.StdEncoding.EncodeToString([]byte(cert))
	dump := `{
 "configs": [
  {
   "@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
   "dynamic_active_secrets": [
    {
     "name": "default",
     "secret": {
      "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
      "name": "default",
      "tls_certificate": {
       "certificate_chain": {"inline_bytes": "` + certB64 + `"},
       "private_key": {"inline_bytes": "` + keyB64 + `"},
       "password": {"inline_string": "hunter2"}
      }
     }
    },
    {
     "name": "file-based",
     "secret": {"tls_certificate": {"private_key": {"filename": "/etc/certs/key.pem"}, "certificate_chain": {"filename": "/etc/certs/cert.pem"}}}
    },
    {
     "name": "camel",
     "secret": {"tlsCertificate": {"privateKey": {"inlineString": ` + jsonString(t, ecKey) + `}, "certificateChain": {"inlineString": ` + jsonString(t, cert) + `}}}
    },
    {"name": "plain", "private_key": ` + jsonString(t, key) + `, "after": "kept-1"},
    {"name": "null", "private_key": null, "after": "kept-2", "nested": {"inline_string": "kept-3"}},
    {"name": "token", "secret": {"generic_secret": {"secret": {"inline_string": "s3cr3t-token"}}}, "after": "kept-4"}
   ]
  },
  {
   "@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
   "stray_pem": ` + jsonString(t, "before\n"+key+"after") + `,
   "stray_b64": {"inline_bytes": "` + keyB64 + `"},
   "truncated": ` + jsonString(t, "x "+key[:60]) + `,
   "escaped \" key": "kept-5"
  }
 ]
}`
	if !json.Valid([]byte(dump)) {
		t.Fatal("the synthetic dump is not valid JSON")
	}
	out := RedactConfigDump([]byte(dump))
	if !json.Valid(out) {
		t.Fatalf("redacted dump is not valid JSON:\n%s", out)
	}
	for _, leak := range []string{"PRIVATE KEY", keyB64[:40], "hunter2", "s3cr3t-token", strings.Split(key, "\n")[1], strings.Split(ecKey, "\n")[1]} {
		if bytes.Contains(out, []byte(leak)) {
			t.Errorf("redacted dump still holds %q:\n%s", leak, out)
		}
	}
	for _, kept := range []string{certB64, jsonString(t, cert), "/etc/certs/key.pem", "kept-1", "kept-2", "kept-3", "kept-4", "kept-5",
		`"before\n[redacted]\nafter"`, `"x [redacted]"`, `"private_key": {"inline_bytes": "W3JlZGFjdGVkXQ=="}`,
		`"privateKey": {"inlineString": "[redacted]"}`, `"private_key": "[redacted]"`, `"stray_b64": {"inline_bytes": "W3JlZGFjdGVkXQ=="}`} {
		if !bytes.Contains(out, []byte(kept)) {
			t.Errorf("redacted dump lost or changed %s:\n%s", kept, out)
		}
	}
	if again := RedactConfigDump(out); !bytes.Equal(again, out) {
		t.Errorf("redaction is not idempotent:\n%s", again)
	}
	// The redacted private key is still valid base64, so a protobuf JSON parser reads the dump.
	if _, err := ParseConfigDump(out); err != nil {
		t.Errorf("ParseConfigDump of the redacted dump: %v", err)
	}
}

// TestRedactConfigDumpIncidents: dumps that Envoy already redacted come out byte for byte.
func TestRedactConfigDumpIncidents(t *testing.T) {
	files, err := filepath.Glob("../testdata/incidents/*/config_dump.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no incident config dumps: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if out := RedactConfigDump(b); !bytes.Equal(out, b) {
			t.Errorf("%s: redaction changed an already redacted dump", f)
		}
	}
}

func TestRedactConfigDumpNotJSON(t *testing.T) {
	key := syntheticKey(t, "RSA PRIVATE KEY")
	tests := []struct{ name, in string }{
		{"unterminated string", `{"a": "` + key},
		{"plain text", "error: " + key + " trailing"},
	}
	for _, tt := range tests {
		out := string(RedactConfigDump([]byte(tt.in)))
		if strings.Contains(out, "PRIVATE KEY") || strings.Contains(out, strings.Split(key, "\n")[1]) {
			t.Errorf("%s: key left in %q", tt.name, out)
		}
		if !strings.Contains(out, Redacted) {
			t.Errorf("%s: no %s in %q", tt.name, Redacted, out)
		}
	}
	if out := RedactConfigDump(nil); len(out) != 0 {
		t.Errorf("RedactConfigDump(nil) = %q", out)
	}
}
