package envoyadmin

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// LineError is an access-log line that ParseAccessLog could not read.
type LineError struct {
	Line   int    `json:"line"`   // 1-based line number in the input
	Reason string `json:"reason"` // why the line was not read, in a user's words
	Text   string `json:"text"`   // the line, clipped to 200 bytes
}

// Error implements error.
func (e LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// maxAccessLogLine bounds the memory one line may take; longer lines are reported, not read.
const maxAccessLogLine = 1 << 20

// ParseAccessLog reads sidecar access-log lines, as `kubectl logs` of an istio-proxy container
// prints them, into entries. It reads, line by line and in any mix:
//
//   - Istio's default text format, 1.9 and later (with %RESPONSE_CODE_DETAILS% and
//     %CONNECTION_TERMINATION_DETAILS%): Format "istio";
//   - Istio 1.3 to 1.8 (mixer status and transport failure, no details): "istio-1.3";
//   - Istio 1.1 and 1.2 (mixer status only): "istio-1.1";
//   - Envoy's default format: "envoy";
//   - JSON lines such as Istio's JSON encoding (start_time, response_code, response_flags,
//     response_code_details, upstream_cluster, duration, ...): "json";
//   - key=value lines of custom formats whose keys name a status code and response flags or
//     details (status=503 response_flag=UF, response_code=..., total_time_ms=...): "kv".
//
// Lines may carry a `kubectl logs --timestamps` prefix, a CRI log-file prefix
// ("2026-01-01T00:00:00.000000001Z stdout F ...", partial "P" records are joined) or
// `kubectl logs --prefix`'s "[pod/name/container]". TCP lines ("- - -") and lines without the
// leading "[START_TIME]" are read too; their Timestamp stays zero, since a log prefix's time is
// when the line was written, not when the request started. Blank lines and '#' comments are skipped, and so are the
// proxy's own log lines (Envoy's "[time][thread][level][logger]" and istio-agent's
// "time<TAB>level<TAB>scope" lines, JSON with "level" and "msg"), which are not errors. Every
// other line is returned as a LineError and reading goes on. The error result is only for a
// failing reader.
//
// Custom formats are read as key=value only when their keys are unambiguous (a status code plus
// flags, details or a cluster), as in envoyproxy/envoy#9242's "response_flag=UT status=200": a
// diagnosis is better served by those fields than by an error, and a key=value line without them
// is still an error. A text field holding a quote followed by a space (an odd user agent) cannot
// be told from the field's end, since Envoy does not escape quotes; such lines may be misread
// or reported.
func ParseAccessLog(r io.Reader) ([]AccessLogEntry, []LineError, error) {
	l, err := ParseLog(r)
	return l.Entries, l.Errors, err
}

// Log is what ParseLog read from a proxy container's log: access-log lines, the proxy's and its
// agent's own lines that report a problem, and the lines it could not read.
type Log struct {
	Entries []AccessLogEntry
	Proxy   []ProxyLogEvent
	Errors  []LineError
	// Other are the lines, unwrapped, that were neither access-log lines nor proxy lines
	// ClassifyProxyLogLine knows (the first maxOtherLines), for a caller that looks for other
	// signals in them.
	Other []LogLine
	// ProxyLines counts the proxy's and its agent's own lines, whatever they say.
	ProxyLines int
}

// LogLine is one logical line of a log, taken out of its wrappers.
type LogLine struct {
	N    int    // 1-based number of the physical line it came from
	Text string // the line, without timestamps, prefixes and wrappers
}

// maxOtherLines bounds Log.Other: the lines past it are counted in Errors only.
const maxOtherLines = 20000

// ParseLog reads a proxy container's log as ParseAccessLog does, and also keeps the proxy's
// and istio-agent's own lines that report a problem (ClassifyProxyLogLine), so that a log of
// warnings alone is evidence. Lines a log pipeline wrapped ({"log":"..."}, {"message":"..."},
// CRI records) and lines copied with their JSON escapes are unwrapped first.
func ParseLog(r io.Reader) (Log, error) {
	p := accessLogParser{}
	br := bufio.NewReaderSize(r, 64*1024)
	for n := 1; ; n++ {
		line, tooLong, err := readBoundedLine(br, maxAccessLogLine)
		if tooLong {
			p.log.Errors = append(p.log.Errors, LineError{Line: n, Reason: fmt.Sprintf("line longer than %d bytes", maxAccessLogLine), Text: clipForError(line, 200)})
		} else if line != "" || err == nil {
			p.line(n, line)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			p.flushPartial()
			p.flushObject()
			return p.log, fmt.Errorf("reading access log: %w", err)
		}
	}
	p.flushPartial()
	p.flushObject()
	return p.log, nil
}

// readBoundedLine reads one line without its line ending. A line longer than max is consumed
// and reported with tooLong, its first max bytes returned.
func readBoundedLine(br *bufio.Reader, max int) (line string, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) <= max {
			buf = append(buf, chunk...)
		} else {
			tooLong = true
			if len(buf) < max {
				buf = append(buf, chunk[:max-len(buf)]...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return strings.TrimRight(string(buf), "\r\n"), tooLong, err
	}
}

type accessLogParser struct {
	log Log
	// A JSON object printed over several lines (jq, a pretty-printing shipper) collects here.
	object      []string
	objectLine  int
	objectBytes int
	// A CRI "P" (partial) record waits here for the rest of its line.
	partial     strings.Builder
	partialLine int
}

func (p *accessLogParser) fail(n int, text, reason string) {
	p.log.Errors = append(p.log.Errors, LineError{Line: n, Reason: reason, Text: clipForError(strings.TrimSpace(text), 200)})
}

func (p *accessLogParser) flushPartial() {
	if p.partialLine == 0 {
		return
	}
	n, text := p.partialLine, p.partial.String()
	p.partial.Reset()
	p.partialLine = 0
	p.record(n, text)
}

// line handles one physical line: it unwraps the CRI prefix, joining partial records.
func (p *accessLogParser) line(n int, raw string) {
	if content, partial, ok := cutCRIPrefix(raw); ok {
		if p.partialLine == 0 {
			p.partialLine = n
		}
		p.partial.WriteString(content)
		if !partial {
			p.flushPartial()
		}
		return
	}
	p.flushPartial()
	if p.collectObject(n, raw) {
		return
	}
	p.record(n, raw)
}

// Bounds of a JSON object printed over several lines.
const (
	maxObjectLines = 400
	maxObjectBytes = 256 << 10
)

// collectObject gathers a JSON object printed over several lines ("{" alone on its line, one
// field per line) and records it as one line once it is whole. It reports whether it took the
// line. An object that never closes within the bounds is recorded line by line.
func (p *accessLogParser) collectObject(n int, raw string) bool {
	t := strings.TrimSpace(raw)
	if p.object == nil {
		if t != "{" {
			return false
		}
		p.object, p.objectLine, p.objectBytes = []string{t}, n, len(t)
		return true
	}
	p.object = append(p.object, t)
	p.objectBytes += len(t)
	if strings.HasPrefix(t, "}") {
		joined := strings.TrimRight(strings.Join(p.object, " "), ", ")
		if json.Valid([]byte(joined)) {
			p.object = nil
			p.record(p.objectLine, joined)
			return true
		}
	}
	if len(p.object) > maxObjectLines || p.objectBytes > maxObjectBytes {
		lines, first := p.object, p.objectLine
		p.object = nil
		for i, l := range lines {
			p.record(first+i, l)
		}
	}
	return true
}

// flushObject records, line by line, an object the input ended inside.
func (p *accessLogParser) flushObject() {
	lines, first := p.object, p.objectLine
	p.object = nil
	for i, l := range lines {
		p.record(first+i, l)
	}
}

// record handles one logical line.
func (p *accessLogParser) record(n int, text string) { p.recordDepth(n, text, 0) }

// recordDepth handles one logical line, taken out of up to maxUnwrapDepth wrappers.
func (p *accessLogParser) recordDepth(n int, text string, depth int) {
	s := strings.TrimSpace(text)
	if s == "" || strings.HasPrefix(s, "#") {
		return
	}
	s = stripProductPrefix(stripLogPrefixes(stripLeadingNoise(s)))
	if s == "" || strings.HasPrefix(s, "#") {
		return
	}
	if depth < maxUnwrapDepth {
		if inner, ok := unwrapShipped(s); ok {
			for _, l := range strings.Split(inner, "\n") {
				p.recordDepth(n, l, depth+1)
			}
			return
		}
		if u := unescapePasted(s); u != s {
			for _, l := range strings.Split(u, "\n") {
				p.recordDepth(n, l, depth+1)
			}
			return
		}
	}
	if isProxyLogLine(s) {
		p.log.ProxyLines++
		if !p.proxyLine(n, s) {
			p.other(n, s)
		}
		return
	}
	var (
		e      AccessLogEntry
		skip   bool
		reason string
	)
	switch {
	case strings.HasPrefix(s, "{"):
		e, skip, reason = parseJSONAccessLine(s)
	case strings.HasPrefix(s, "[") || strings.HasPrefix(s, `"`):
		e, reason = parseTextAccessLine(s)
	default:
		var ok bool
		if e, ok = parseKVAccessLine(time.Time{}, s); !ok {
			reason = "not an access-log line: neither Envoy's or Istio's text format, JSON, nor key=value with a status code"
		}
	}
	switch {
	case skip:
		p.log.ProxyLines++
		if !p.proxyLine(n, s) {
			p.other(n, s)
		}
	case reason != "":
		if !p.proxyLine(n, s) {
			p.fail(n, text, reason)
			p.other(n, s)
		}
	default:
		e.Line = n
		p.log.Entries = append(p.log.Entries, e)
	}
}

// other keeps a line that is neither kind, for callers that look for other signals in it.
func (p *accessLogParser) other(n int, s string) {
	if len(p.log.Other) < maxOtherLines {
		p.log.Other = append(p.log.Other, LogLine{N: n, Text: s})
	}
}

// proxyLine keeps one of the proxy's own lines when it reports a problem.
func (p *accessLogParser) proxyLine(n int, s string) bool {
	ev, ok := ClassifyProxyLogLine(s)
	if ok {
		ev.Line = n
		p.log.Proxy = append(p.log.Proxy, ev)
	}
	return ok
}

// cutCRIPrefix unwraps a CRI log-file line: "<RFC3339Nano> stdout|stderr F|P <content>".
func cutCRIPrefix(s string) (content string, partial, ok bool) {
	_, rest, ok := cutLeadingTimestamp(s)
	if !ok {
		return "", false, false
	}
	stream, rest, ok1 := strings.Cut(rest, " ")
	tag, content, ok2 := strings.Cut(rest, " ")
	if !ok2 && (tag == "F" || tag == "P") {
		ok2 = true // an empty record
	}
	if !ok1 || !ok2 || (stream != "stdout" && stream != "stderr") || (tag != "F" && tag != "P") {
		return "", false, false
	}
	return content, tag == "P", true
}

// cutLeadingTimestamp removes an RFC 3339 timestamp followed by a space or tab.
func cutLeadingTimestamp(s string) (time.Time, string, bool) {
	if len(s) < 20 || s[0] < '0' || s[0] > '9' {
		return time.Time{}, s, false
	}
	end := strings.IndexAny(s, " \t")
	if end < 0 {
		return time.Time{}, s, false
	}
	t, err := time.Parse(time.RFC3339Nano, s[:end])
	if err != nil {
		return time.Time{}, s, false
	}
	return t, s[end+1:], true
}

// stripLogPrefixes removes `kubectl logs --prefix` and up to two leading timestamps
// (`kubectl logs --timestamps` and the line's own, as istio-agent writes).
func stripLogPrefixes(s string) string {
	if strings.HasPrefix(s, "[pod/") {
		if end := strings.Index(s, "] "); end > 0 {
			s = strings.TrimSpace(s[end+2:])
		}
	}
	s = stripBracketLabels(s)
	for range 2 {
		_, rest, ok := cutLeadingTimestamp(s)
		if !ok {
			break
		}
		s = strings.TrimSpace(rest)
	}
	return s
}

// stripBracketLabels removes labels a log viewer puts in brackets before a line whose own text
// starts with a bracketed time or a quote ("[resource.labels.containerName: istio-proxy] [2024-..."),
// after any timestamp of the viewer.
func stripBracketLabels(s string) string {
	for range 3 {
		rest := s
		if _, r, ok := cutLeadingTimestamp(rest); ok {
			rest = strings.TrimSpace(r)
		}
		if !strings.HasPrefix(rest, "[") || len(rest) < 2 || (rest[1] >= '0' && rest[1] <= '9') {
			return s
		}
		end := strings.Index(rest, "] ")
		if end < 0 {
			return s
		}
		after := strings.TrimSpace(rest[end+2:])
		if !(strings.HasPrefix(after, `"`) || strings.HasPrefix(after, "[") && len(after) > 1 && after[1] >= '0' && after[1] <= '9') {
			return s
		}
		s = after
	}
	return s
}

// logLevels are the words that follow the timestamp of istio-agent and Istio-formatted Envoy
// log lines.
var logLevels = map[string]bool{
	"trace": true, "debug": true, "info": true, "warn": true, "warning": true,
	"error": true, "err": true, "critical": true, "fatal": true, "panic": true,
}

// isProxyLogLine reports whether s (prefixes removed) is the proxy's own logging rather than
// an access log: Envoy's "[2026-01-01 00:00:00.000][15][warning][config] ..." or a line whose
// first word is a log level.
func isProxyLogLine(s string) bool {
	if strings.HasPrefix(s, "[") {
		if end := strings.IndexByte(s, ']'); end > 0 && end+1 < len(s) && s[end+1] == '[' {
			return true
		}
	}
	first := s
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		first = s[:i]
	}
	return logLevels[strings.ToLower(strings.Trim(first, "[]:"))]
}
