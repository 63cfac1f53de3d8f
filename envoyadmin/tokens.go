package envoyadmin

import (
	"bytes"
	"regexp"
)

var (
	// jwt matches a JSON Web Token: base64url header and payload, both JSON objects (so both
	// start with "eyJ"), and a signature. Istio forwards and logs them in Authorization
	// headers and x-jwt-payload-style headers.
	jwt = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*`)
	// authScheme matches an HTTP credential after its scheme: "Bearer <token>", "Basic <b64>".
	authScheme = regexp.MustCompile(`(?i)\b(bearer|basic)(\s+|%20)[A-Za-z0-9._~+/=-]{8,}`)
)

// RedactTokens replaces credentials in text with "[redacted]": JSON Web Tokens and the
// credential of "Bearer ..." and "Basic ..." values, where a sidecar's access log (a format
// that logs %REQ(AUTHORIZATION)%), a config dump (a header an EnvoyFilter adds) or a pod's
// environment might hold them. The replacement has no quote or backslash, so JSON stays JSON.
func RedactTokens(text []byte) []byte {
	if bytes.Contains(text, []byte("eyJ")) {
		text = jwt.ReplaceAll(text, []byte(Redacted))
	}
	// The case-insensitive pattern has no literal prefix to scan for, so the regexp would try
	// it at every byte of a large config dump; most texts have no scheme word at all.
	for _, w := range []string{"earer", "EARER", "asic", "ASIC"} {
		if bytes.Contains(text, []byte(w)) {
			return authScheme.ReplaceAll(text, []byte("${1}${2}"+Redacted))
		}
	}
	return text
}
