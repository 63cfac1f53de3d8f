package envoyadmin

import (
	"bytes"
	"encoding/base64"
	"encoding/json"

	"github.com/kubectl-mesh/kubectl-mesh/internal/lazyregexp"
)

// Redacted is what RedactConfigDump puts in place of secret text, as Envoy itself prints it.
const Redacted = "[redacted]"

// redactedBase64 replaces secret bytes fields (inline_bytes), which must stay valid base64 for a
// protobuf JSON parser; it is base64("[redacted]"), as Envoy prints it.
var redactedBase64 = base64.StdEncoding.EncodeToString([]byte(Redacted))

// secretFields are the keys whose whole value is secret: TLS private keys and their passwords,
// and generic secrets (tokens, HMAC keys), in Envoy's snake_case and protobuf JSON's camelCase.
var secretFields = map[string]bool{
	"private_key": true, "privateKey": true,
	"password":       true,
	"generic_secret": true, "genericSecret": true,
	"pkcs12":              true,
	"session_ticket_keys": true, "sessionTicketKeys": true,
	"local_jwks": true, "localJwks": true, // a JWKS may hold symmetric keys ("kty": "oct")
	"client_secret": true, "clientSecret": true,
	"token_secret": true, "tokenSecret": true,
	"hmac_secret": true, "hmacSecret": true,
}

// credentialHeaderName matches the names of headers whose value is a credential, where a
// config dump writes a header as {"key": NAME, "value": VALUE} (header_value, request headers
// an EnvoyFilter adds).
var credentialHeaderName = lazyregexp.New(`(?i)^(authorization|proxy-authorization|cookie|set-cookie|x-api-key|api-key|x-auth-token|x-access-token|private-token|x-vault-token|x-amz-security-token)$`)

// keptFields under a secret field name where the secret is, not what it is.
var keptFields = map[string]bool{
	"filename": true, "environment_variable": true, "environmentVariable": true, "@type": true,
}

// pemPrivateKey matches a PEM private key block as raw JSON string text (newlines escaped as \n),
// or up to the end of the string when the END line is missing (a truncated dump).
var pemPrivateKey = lazyregexp.New(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|$)`)

// RedactConfigDump returns a copy of a config dump with no private key material in it:
//   - every string inside the value of a private_key, privateKey, password or generic_secret
//     field (inline_bytes, inline_string, ...) becomes "[redacted]" (base64 of it for bytes
//     fields), leaving file names and environment variable names;
//   - any PEM "PRIVATE KEY" block in any string becomes "[redacted]";
//   - any long base64 string that decodes to a PEM private key becomes base64("[redacted]").
//
// It checks the text is JSON, then scans it once without decoding it into a tree, so dumps of any size and with any
// unknown extension type are handled, and valid JSON stays valid JSON with its layout unchanged.
// Input that is not JSON gets the PEM replacement over the whole text.
func RedactConfigDump(data []byte) []byte {
	if !json.Valid(data) {
		return pemPrivateKey.ReplaceAll(data, []byte(Redacted))
	}
	out := make([]byte, 0, len(data))
	var (
		depth       int
		secretDepth = -1 // depth of the secret field's key, -1 outside a secret value
		awaiting    bool // a secret key was read and its value has not started
		lastKey     string
		// headerDepth is the depth of an object whose "key" names a credential header: its
		// "value" string is redacted. -1 when none.
		headerDepth = -1
	)
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch c {
		case '"':
			end := stringEnd(data, i) // found: data is valid JSON
			raw := data[i+1 : end]    // string content, still escaped
			if isKey(data, end+1) {
				lastKey = string(raw)
				if secretFields[lastKey] && secretDepth < 0 {
					secretDepth, awaiting = depth, true
				}
				out = append(out, data[i:end+1]...)
				i = end
				continue
			}
			inSecret := secretDepth >= 0 && (awaiting || depth > secretDepth)
			if (lastKey == "key" || lastKey == "name") && credentialHeaderName.Match(raw) {
				headerDepth = depth
			}
			out = append(out, '"')
			switch {
			case headerDepth == depth && lastKey == "value" && string(raw) != Redacted:
				out = append(out, Redacted...)
			case inSecret && !keptFields[lastKey] && string(raw) != Redacted && string(raw) != redactedBase64:
				if isBytesField(lastKey) {
					out = append(out, redactedBase64...)
				} else {
					out = append(out, Redacted...)
				}
			case base64PrivateKey(raw):
				out = append(out, redactedBase64...)
			default:
				out = append(out, pemPrivateKey.ReplaceAll(raw, []byte(Redacted))...)
			}
			out = append(out, '"')
			if awaiting && depth == secretDepth { // the secret's value was this string
				secretDepth, awaiting = -1, false
			}
			i = end
			continue
		case '{', '[':
			awaiting = false
			depth++
		case '}', ']':
			if depth == headerDepth {
				headerDepth = -1
			}
			depth--
			if depth <= secretDepth && !awaiting || depth < secretDepth {
				secretDepth, awaiting = -1, false
			}
		case ',':
			if depth == secretDepth { // the secret's value was a literal (null, a number)
				secretDepth, awaiting = -1, false
			}
		}
		out = append(out, c)
	}
	return out
}

// stringEnd returns the index of the quote closing the string that opens at start, or -1
// (never for valid JSON).
func stringEnd(data []byte, start int) int {
	for j := start + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j
		}
	}
	return -1
}

// isKey says whether the string ending just before from is an object key.
func isKey(data []byte, from int) bool {
	for j := from; j < len(data); j++ {
		switch data[j] {
		case ' ', '\t', '\n', '\r':
			continue
		case ':':
			return true
		default:
			return false
		}
	}
	return false
}

func isBytesField(key string) bool {
	return key == "inline_bytes" || key == "inlineBytes"
}

// base64PrivateKey says whether a string's text is base64 of a PEM private key (an inline_bytes
// under a field name not in secretFields). Short strings are skipped: no key is that small.
func base64PrivateKey(raw []byte) bool {
	if len(raw) < 64 || bytes.IndexByte(raw, '\\') >= 0 {
		return false
	}
	dec, err := base64.StdEncoding.DecodeString(string(raw))
	if err != nil {
		return false
	}
	return bytes.Contains(dec, []byte("PRIVATE KEY-----"))
}
