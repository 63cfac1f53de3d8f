// Package ztunnel reads what Istio's ambient data path prints: ztunnel's log lines (its
// connection access log and its own messages, in the plain, JSON and pre-1.22 formats) and the
// errors it and the istio-cni node agent report, classified by what they mean. Its grammar and
// error texts are ztunnel's own (src/telemetry.rs, src/proxy/metrics.rs and src/proxy.rs's
// Error at tag 1.30.3); lines people paste are often clipped, re-spaced or wrapped, so every
// part but the message is optional.
package ztunnel

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Line is one ztunnel log line.
type Line struct {
	// Level is error, warn, info, debug or trace.
	Level string
	// Target is the module that logged the line, without ztunnel:: and spans: access for the
	// connection log, xds::client, proxy::h2, inpod::statemanager, dns...
	Target string
	// Message is what happened: "connection complete", "connection failed", "ping error: ...".
	Message string
	// Fields are the line's key=value pairs, unquoted: src.addr, dst.hbone_addr, direction,
	// bytes_sent, duration, error...
	Fields map[string]string
}

// Access reports whether the line is one of the connection access log's.
func (l Line) Access() bool { return l.Target == "access" }

// Error is the error the line reports: the error field of an access-log line (err in the old
// format), else the message of a warn or error line, or of any line whose message is one of
// ztunnel's failures (some are logged at info: "retrying workload failed: ...").
func (l Line) Error() string {
	if e := l.Fields["error"]; e != "" {
		return e
	}
	if e := l.Fields["err"]; e != "" {
		return e
	}
	if _, failure := Classify(l.Message); failure || l.Level == "error" || l.Level == "warn" {
		return l.Message
	}
	return ""
}

var levels = map[string]bool{"error": true, "warn": true, "info": true, "debug": true, "trace": true}

// ParseLine reads one line in any of ztunnel's formats, after whatever a log tool put before it
// (a timestamp, a pod name, "|"). It reports false for a line that is not ztunnel's.
func ParseLine(s string) (Line, bool) {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '{'); i >= 0 && strings.HasSuffix(s, "}") {
		if l, ok := parseJSON(s[i:]); ok {
			return l, true
		}
	}
	words := strings.Fields(s)
	for i := 0; i+2 < len(words); i++ {
		lvl := words[i]
		switch {
		case levels[lvl] && isTarget(words[i+1]):
			// Plain format: level, target, message, fields.
			return plain(lvl, words[i+1], rest(s, words, i+2)), true
		case levels[strings.ToLower(lvl)] && lvl == strings.ToUpper(lvl):
			// Pre-1.22: LEVEL span{...}: ztunnel::module: message k=v.
			if l, ok := old(strings.ToLower(lvl), rest(s, words, i+1)); ok {
				return l, true
			}
		}
	}
	// A line pasted without its timestamp and level: "access  connection complete  src.addr=...".
	if len(words) > 1 && isTarget(words[0]) && (words[0] == "access" || strings.Contains(words[0], "::")) {
		return plain("", words[0], rest(s, words, 1)), true
	}
	return Line{}, false
}

// rest is s from its n-th word on.
func rest(s string, words []string, n int) string {
	at := 0
	for i := 0; i < n; i++ {
		at = strings.Index(s[at:], words[i]) + at + len(words[i])
	}
	return strings.TrimSpace(s[at:])
}

// isTarget reports a word that is a ztunnel target: a module path, perhaps with spans
// (xds::client:xds{id=8}, proxy::h2::client:proxy{wl=ns/pod}:outbound{id=...}), or one of the
// bare targets.
func isTarget(w string) bool {
	base, _, _ := strings.Cut(w, "{")
	switch base {
	case "access", "dns", "readiness", "app", "ztunnel", "config", "hyper_util", "cni-agent", "cni-plugin":
		return true
	}
	return strings.Contains(base, "::") && !strings.ContainsAny(base, "=\"")
}

func plain(level, target, tail string) Line {
	l := Line{Level: level, Target: stripSpans(target), Fields: map[string]string{}}
	l.Message, l.Fields = splitFields(tail)
	return l
}

// stripSpans removes the span context ztunnel appends to a target: ":xds{id=8}",
// ":proxy{wl=ns/pod}:outbound{id=...}".
func stripSpans(t string) string {
	t = strings.TrimPrefix(t, "ztunnel::")
	if i := strings.IndexByte(t, '{'); i >= 0 {
		t = t[:i]
		if j := strings.LastIndex(t, "::"); j >= 0 {
			if k := strings.IndexByte(t[j+2:], ':'); k >= 0 {
				t = t[:j+2+k]
			}
		} else if k := strings.IndexByte(t, ':'); k >= 0 {
			t = t[:k]
		}
	}
	return t
}

// old reads the format before ztunnel's access log (Istio 1.21 and earlier):
// "span{...}: ztunnel::proxy::outbound: failed dur=10.0s err=io error: deadline has elapsed".
func old(level, tail string) (Line, bool) {
	i := strings.Index(tail, "ztunnel::")
	if i < 0 {
		return Line{}, false
	}
	mod, msg, ok := strings.Cut(tail[i:], ": ")
	if !ok {
		return Line{}, false
	}
	l := Line{Level: level, Target: strings.TrimPrefix(mod, "ztunnel::"), Fields: map[string]string{}}
	// err= runs to the end of the line: its text has spaces and no quotes.
	if j := strings.Index(msg, " err="); j >= 0 {
		l.Fields["err"] = strings.TrimSpace(msg[j+len(" err="):])
		msg = msg[:j]
	}
	l.Message, l.Fields = splitFieldsInto(msg, l.Fields)
	return l, true
}

func splitFields(s string) (string, map[string]string) {
	return splitFieldsInto(s, map[string]string{})
}

// splitFieldsInto cuts the message from the key=value fields after it: the message ends where
// a word of the form key=value starts whose key is a field name (lower case, dots, underscores).
func splitFieldsInto(s string, fields map[string]string) (string, map[string]string) {
	msgEnd := len(s)
	for i := 0; i < len(s); {
		start := i
		for i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '=' {
			i++
		}
		if i < len(s) && s[i] == '=' && isKey(s[start:i]) && (start == 0 || s[start-1] == ' ' || s[start-1] == '\t') {
			if msgEnd == len(s) {
				msgEnd = start
			}
			key := s[start:i]
			val, next := value(s, i+1)
			fields[key] = val
			i = next
		}
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i < len(s) && i == start {
			i++
		}
	}
	return strings.TrimSpace(s[:msgEnd]), fields
}

func isKey(k string) bool {
	if k == "" || k[0] < 'a' || k[0] > 'z' {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// value reads a field's value at s[i:]: a Debug-quoted string with backslash escapes (a clipped
// paste may lack its closing quote), or a bare word.
func value(s string, i int) (string, int) {
	if i < len(s) && s[i] == '"' {
		var b strings.Builder
		for j := i + 1; j < len(s); j++ {
			switch c := s[j]; {
			case c == '\\' && j+1 < len(s):
				j++
				b.WriteByte(s[j])
			case c == '"':
				return b.String(), j + 1
			default:
				b.WriteByte(c)
			}
		}
		return b.String(), len(s)
	}
	j := i
	for j < len(s) && s[j] != ' ' && s[j] != '\t' {
		j++
	}
	return s[i:j], j
}

// parseJSON reads ztunnel's JSON format: level, time, scope, message and the fields flat.
func parseJSON(s string) (Line, bool) {
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return Line{}, false
	}
	scope, _ := m["scope"].(string)
	msg, _ := m["message"].(string)
	level, _ := m["level"].(string)
	if scope == "" || msg == "" || !levels[strings.ToLower(level)] {
		return Line{}, false
	}
	if scope != "access" && !strings.HasPrefix(scope, "ztunnel") {
		return Line{}, false
	}
	l := Line{Level: strings.ToLower(level), Target: strings.TrimPrefix(scope, "ztunnel::"), Message: msg, Fields: map[string]string{}}
	for k, v := range m {
		switch k {
		case "level", "time", "scope", "message":
			continue
		}
		switch v := v.(type) {
		case string:
			l.Fields[k] = v
		case float64:
			l.Fields[k] = strconv.FormatFloat(v, 'f', -1, 64)
		}
	}
	return l, true
}
