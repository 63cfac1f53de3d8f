package envoyadmin

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRedactTokens(t *testing.T) {
	const token = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJpc3MiOiJodHRwczovL2V4YW1wbGUuY29tIiwic3ViIjoiMTIzNCJ9.c2lnbmF0dXJlLWJ5dGVz"
	for _, tc := range []struct{ in, want string }{
		{`[2024-04-16T14:02:15.000Z] "GET /api HTTP/1.1" 503 UF "Bearer ` + token + `" "curl/8"`, `[2024-04-16T14:02:15.000Z] "GET /api HTTP/1.1" 503 UF "Bearer [redacted]" "curl/8"`},
		{`authorization=basic dXNlcjpwYXNzd29yZA==`, `authorization=basic [redacted]`},
		{`x-jwt=` + token + ` next`, `x-jwt=[redacted] next`},
		{`GET /?access_token=Bearer%20abcdefghijkl`, `GET /?access_token=[redacted]`},
		// Not credentials: a short word after "basic", a base64 blob that is not a JWT.
		{`basic auth failed`, `basic auth failed`},
		{`inline_bytes: "eyJhIjoxfQ=="`, `inline_bytes: "eyJhIjoxfQ=="`},
	} {
		if got := string(RedactTokens([]byte(tc.in))); got != tc.want {
			t.Errorf("RedactTokens(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
	doc := `{"headers":[{"key":"authorization","value":"Bearer ` + token + `"}]}`
	out := RedactTokens([]byte(doc))
	if !json.Valid(out) || strings.Contains(string(out), token[:20]) {
		t.Errorf("JSON after redaction: %s", out)
	}
}
