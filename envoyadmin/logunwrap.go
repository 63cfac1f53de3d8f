package envoyadmin

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/internal/lazyregexp"
)

// Log lines reach users through pipelines that wrap them: the container runtime's JSON file
// ({"log":"...","stream":"stdout","time":...}), shippers (Fluent Bit, Vector, Logstash, Loki:
// {"message":"...","kubernetes":{...}}), cloud loggers (textPayload, jsonPayload), and copies
// of such JSON with its quotes still escaped. These helpers take the line back out.

// shippedKeys are the fields log pipelines put the original line in, most specific first.
var shippedKeys = []string{"log", "message", "MESSAGE", "textPayload", "jsonPayload", "_source", "body", "line"}

// maxUnwrapDepth bounds how many wrappers are taken off one line (a wrapper in a wrapper).
const maxUnwrapDepth = 3

// unwrapShipped returns the line a log pipeline's JSON object carries, when s is such an object
// and not itself an access-log or proxy-log object. The result may hold several lines.
func unwrapShipped(s string) (string, bool) {
	if !strings.HasPrefix(s, "{") {
		return "", false
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &obj); err != nil {
		return "", false
	}
	fields := map[string]string{}
	for k, v := range obj {
		if name := accessLogKey(k); name != "" {
			fields[name] = looseString(v)
		}
	}
	if looksLikeAccessLog(fields) {
		return "", false
	}
	for _, k := range shippedKeys {
		v, ok := obj[k]
		if !ok {
			continue
		}
		var str string
		if json.Unmarshal(v, &str) == nil {
			if strings.TrimSpace(str) != "" {
				return str, true
			}
			continue
		}
		if t := strings.TrimSpace(string(v)); strings.HasPrefix(t, "{") {
			return t, true
		}
	}
	return "", false
}

// unescapePasted undoes the escaping of a line copied out of a JSON string (\" for quotes,
// \n between lines, \\ for a backslash), as users paste lines from log viewers that show the
// raw JSON. It returns s unchanged when s holds no such escape or does not unquote.
func unescapePasted(s string) string {
	if !strings.Contains(s, `\"`) && !strings.Contains(s, `\n`) {
		return s
	}
	if u, err := strconv.Unquote(`"` + s + `"`); err == nil {
		return u
	}
	// An excerpt may cut an escape in half or hold a lone quote: fall back to the quotes alone.
	return strings.ReplaceAll(s, `\"`, `"`)
}

// productPrefixes are words some gateways print before their access-log lines (Emissary and
// Ambassador: "ACCESS [2024-...] \"GET ...").
var productPrefixes = []string{"ACCESS "}

func stripProductPrefix(s string) string {
	for _, p := range productPrefixes {
		if rest, ok := strings.CutPrefix(s, p); ok {
			if r := strings.TrimSpace(rest); strings.HasPrefix(r, "[") || strings.HasPrefix(r, `"`) {
				return r
			}
		}
	}
	return s
}

// leadingTime finds where a log line's own time starts: RFC 3339 or Envoy's "[2006-01-02
// 15:04:05.000]".
var leadingTime = lazyregexp.New(`\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}`)

// maxNoisePrefix bounds the prefix stripLeadingNoise removes.
const maxNoisePrefix = 160

// stripLeadingNoise removes what tools put before a log line's own time: pod and container
// names (stern, kubectl logs --prefix, skaffold's "[istio-proxy] "), grep's line numbers
// ("3236824-"), a log viewer's level or epoch column ("INFO ", "1585346044212,"). Lines that
// start with their own time, a quote or a brace keep everything.
func stripLeadingNoise(s string) string {
	if s == "" || strings.ContainsRune(`{"`, rune(s[0])) || (s[0] == '[' && len(s) > 1 && s[1] >= '0' && s[1] <= '9') || (s[0] >= '0' && s[0] <= '9' && len(s) > 4 && s[4] == '-') {
		return s
	}
	head := s
	if len(head) > maxNoisePrefix {
		head = head[:maxNoisePrefix]
	}
	loc := leadingTime.FindStringIndex(head)
	if loc == nil || loc[0] == 0 {
		return s
	}
	prefix := s[:loc[0]]
	if strings.ContainsAny(strings.TrimSuffix(prefix, `"`), `"{=`) || len(strings.Fields(prefix)) > 4 {
		return s
	}
	rest := s[loc[0]:]
	if strings.HasSuffix(prefix, `"`) {
		rest = strings.TrimSuffix(rest, `"`)
	}
	return rest
}
