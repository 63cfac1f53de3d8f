package envoyadmin

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// logToken is one field of a text access-log line; quoted fields keep their spaces.
type logToken struct {
	s      string
	quoted bool
}

// tokenizeAccessLog splits a text access-log line on spaces, keeping "quoted fields" whole. A
// quoted field ends at a quote followed by a space or the end of the line, so a quote inside
// a user agent does not end it early.
func tokenizeAccessLog(s string) ([]logToken, error) {
	var toks []logToken
	for i := 0; i < len(s); {
		if s[i] == ' ' || s[i] == '\t' {
			i++
			continue
		}
		if s[i] == '"' {
			end := -1
			for j := i + 1; j < len(s); j++ {
				if s[j] == '"' && (j+1 == len(s) || s[j+1] == ' ' || s[j+1] == '\t') {
					end = j
					break
				}
			}
			if end < 0 {
				return nil, fmt.Errorf("unterminated quoted field at byte %d", i)
			}
			toks = append(toks, logToken{s: s[i+1 : end], quoted: true})
			i = end + 1
			continue
		}
		end := strings.IndexAny(s[i:], " \t")
		if end < 0 {
			end = len(s) - i
		}
		toks = append(toks, logToken{s: s[i : i+end]})
		i += end
	}
	return toks, nil
}

// textLayout names the fields of one text format after the quoted request line. Fields from
// "cluster" on are optional, so that Envoy's default format is a prefix of Istio's.
type textLayout struct {
	format string
	fields []string
	min    int // fields that must be present
}

var (
	tailFields = []string{"bytes_received", "bytes_sent", "duration", "upstream_service_time",
		"x_forwarded_for", "user_agent", "request_id", "authority", "upstream_host",
		"upstream_cluster", "upstream_local_address", "downstream_local_address",
		"downstream_remote_address", "requested_server_name", "route_name"}
	layoutIstio = textLayout{"istio", append([]string{"response_code", "response_flags",
		"response_code_details", "connection_termination_details",
		"upstream_transport_failure_reason"}, tailFields...), 14}
	layoutIstio13 = textLayout{"istio-1.3", append([]string{"response_code", "response_flags",
		"mixer_status", "upstream_transport_failure_reason"}, tailFields...), 13}
	layoutIstio11 = textLayout{"istio-1.1", append([]string{"response_code", "response_flags",
		"mixer_status"}, tailFields[:len(tailFields)-1]...), 12}
	layoutEnvoy = textLayout{"envoy", append([]string{"response_code", "response_flags"},
		tailFields...), 11}
)

// pickTextLayout tells the formats apart by which of the fields after the flags are quoted.
func pickTextLayout(t []logToken) (textLayout, bool) {
	q := func(i int) bool { return i < len(t) && t[i].quoted }
	switch {
	case len(t) < 5:
		return textLayout{}, false
	case q(2) && q(3):
		return layoutIstio13, true
	case q(2):
		return layoutIstio11, true
	case !q(3) && q(4):
		return layoutIstio, true
	case isDigits(t[2].s) || t[2].s == "-":
		return layoutEnvoy, true
	}
	return textLayout{}, false
}

// parseTextAccessLine reads a line of Envoy's or Istio's text format; reason is why not.
func parseTextAccessLine(s string) (e AccessLogEntry, reason string) {
	var start time.Time
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return e, "'[' with no closing ']': not an access-log start time"
		}
		start = parseLogTime(s[1:end])
		s = strings.TrimSpace(s[end+1:])
		if !strings.HasPrefix(s, `"`) {
			if kv, ok := parseKVAccessLine(start, s); ok {
				return kv, ""
			}
			return e, "text after [START_TIME] is neither a quoted request nor key=value fields with a status code"
		}
	}
	toks, err := tokenizeAccessLog(s)
	if err != nil {
		return e, err.Error()
	}
	if len(toks) == 0 || !toks[0].quoted {
		return e, "no quoted \"METHOD PATH PROTOCOL\" field"
	}
	request, rest := toks[0].s, toks[1:]
	layout, ok := pickTextLayout(rest)
	if !ok || len(rest) < layout.min {
		return e, fmt.Sprintf("%d fields after the request; Envoy's default format has 11, Istio's 17 to 20", len(rest))
	}
	fields := make(map[string]string, len(layout.fields)+3)
	for i, name := range layout.fields {
		if i < len(rest) {
			fields[name] = rest[i].s
		}
	}
	parts := strings.Fields(request)
	if len(parts) >= 1 {
		fields["method"] = parts[0]
	}
	if len(parts) >= 3 {
		fields["path"] = strings.Join(parts[1:len(parts)-1], " ")
		fields["protocol"] = parts[len(parts)-1]
	} else if len(parts) == 2 {
		fields["path"] = parts[1]
	}
	e, reason = entryFromFields(fields, true)
	if reason != "" {
		return e, reason
	}
	e.Timestamp = start
	e.Format = layout.format
	return e, ""
}

// accessLogKeys maps field names of JSON and key=value access logs, lower case and without '_'
// and '-', to the fields entryFromFields reads (the names Istio's JSON encoding uses).
var accessLogKeys = map[string]string{
	"starttime": "start_time", "time": "start_time", "timestamp": "start_time",
	"method": "method", "path": "path", "request": "path", "protocol": "protocol", "alpn": "protocol",
	"responsecode": "response_code", "status": "response_code", "code": "response_code", "statuscode": "response_code",
	"responseflags": "response_flags", "responseflag": "response_flags", "flags": "response_flags",
	"responsecodedetails": "response_code_details", "statusdetails": "response_code_details", "details": "response_code_details",
	"connectionterminationdetails":   "connection_termination_details",
	"upstreamtransportfailurereason": "upstream_transport_failure_reason",
	"bytesreceived":                  "bytes_received", "requestsize": "bytes_received",
	"bytessent": "bytes_sent", "responsesize": "bytes_sent",
	"duration": "duration", "durationms": "duration", "totaltimems": "duration",
	"upstreamservicetime": "upstream_service_time", "xenvoyupstreamservicetime": "upstream_service_time",
	"authority": "authority", "upstreamhost": "upstream_host", "upstream": "upstream_host",
	"upstreamcluster": "upstream_cluster", "upstreamclusterraw": "upstream_cluster",
	"routename":  "route_name",
	"grpcstatus": "grpc_status", "grpcstatusnumber": "grpc_status",
}

func accessLogKey(k string) string {
	k = strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(k))
	return accessLogKeys[k]
}

// looksLikeAccessLog requires a status code and flags or details: enough to be sure a JSON or
// key=value line is a request log and not something else that happens to have a "status".
func looksLikeAccessLog(fields map[string]string) bool {
	_, code := fields["response_code"]
	_, flags := fields["response_flags"]
	_, details := fields["response_code_details"]
	_, cluster := fields["upstream_cluster"]
	return code && (flags || details || cluster)
}

// parseKVAccessLine reads "key=value key2="quoted value" ..." lines of custom formats.
func parseKVAccessLine(start time.Time, s string) (AccessLogEntry, bool) {
	fields := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		eq := strings.IndexByte(s, '=')
		sp := strings.IndexAny(s, " \t")
		if eq <= 0 || (sp >= 0 && sp < eq) {
			// A word without '=': skip it.
			if sp < 0 {
				break
			}
			s = s[sp:]
			continue
		}
		key, rest := s[:eq], s[eq+1:]
		var value string
		if strings.HasPrefix(rest, `"`) {
			if end := strings.IndexByte(rest[1:], '"'); end >= 0 {
				value, s = rest[1:end+1], rest[end+2:]
			} else {
				value, s = rest[1:], ""
			}
		} else if sp := strings.IndexAny(rest, " \t"); sp >= 0 {
			value, s = rest[:sp], rest[sp:]
		} else {
			value, s = rest, ""
		}
		if name := accessLogKey(key); name != "" {
			if _, dup := fields[name]; !dup {
				fields[name] = value
			}
		}
	}
	if !looksLikeAccessLog(fields) {
		return AccessLogEntry{}, false
	}
	e, reason := entryFromFields(fields, false)
	if reason != "" {
		return AccessLogEntry{}, false
	}
	if e.Timestamp.IsZero() {
		e.Timestamp = start
	}
	e.Format = "kv"
	return e, true
}

// parseJSONAccessLine reads a JSON access-log line. skip is true for the proxy's own JSON logs.
func parseJSONAccessLine(s string) (e AccessLogEntry, skip bool, reason string) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &obj); err != nil {
		return e, false, "invalid JSON: " + err.Error()
	}
	fields := map[string]string{}
	for k, v := range obj {
		if name := accessLogKey(k); name != "" {
			fields[name] = looseString(v)
		}
	}
	if !looksLikeAccessLog(fields) {
		_, level := obj["level"]
		_, msg := obj["msg"]
		if level || msg {
			return e, true, ""
		}
		return e, false, "JSON object without response_code and response_flags, response_code_details or upstream_cluster"
	}
	e, reason = entryFromFields(fields, false)
	e.Format = "json"
	return e, false, reason
}

// entryFromFields fills an entry from fields named as in Istio's JSON encoding. Envoy writes
// "-" for unset values; strict (the text formats) makes a malformed number or flag list an
// error, since it means the line's fields were not where its format puts them.
func entryFromFields(f map[string]string, strict bool) (AccessLogEntry, string) {
	str := func(name string) string {
		if v := f[name]; v != "-" {
			return v
		}
		return ""
	}
	e := AccessLogEntry{
		Method:                str("method"),
		Path:                  str("path"),
		Protocol:              str("protocol"),
		Details:               str("response_code_details"),
		ConnectionTermination: str("connection_termination_details"),
		TransportFailure:      str("upstream_transport_failure_reason"),
		Authority:             str("authority"),
		UpstreamHost:          str("upstream_host"),
		UpstreamCluster:       str("upstream_cluster"),
		RouteName:             str("route_name"),
		GRPCStatus:            str("grpc_status"),
		Timestamp:             parseLogTime(f["start_time"]),
	}
	var bad []string
	num := func(name string) int64 {
		v := strings.TrimSpace(f[name])
		if v == "" || v == "-" {
			return -1
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			if fl, ferr := strconv.ParseFloat(v, 64); ferr == nil && fl >= -1 && fl < 1<<53 {
				return int64(fl)
			}
			bad = append(bad, fmt.Sprintf("%s %q is not a number", name, clipForError(v, 40)))
			return -1
		}
		return n
	}
	e.Code = int(max(num("response_code"), 0))
	e.BytesReceived = max(num("bytes_received"), 0)
	e.BytesSent = max(num("bytes_sent"), 0)
	e.Duration = msDuration(num("duration"))
	e.UpstreamServiceTime = msDuration(num("upstream_service_time"))
	e.Flags = ParseResponseFlags(f["response_flags"])
	for _, fl := range e.Flags {
		if !IsKnownResponseFlag(fl) && !isUpperWord(fl) {
			bad = append(bad, fmt.Sprintf("response flags %q are not Envoy flags", clipForError(f["response_flags"], 40)))
			break
		}
	}
	if strict && len(bad) > 0 {
		return e, strings.Join(bad, "; ") + ": the line does not follow a known text format"
	}
	return e, ""
}

// msDuration turns milliseconds into a Duration, keeping -1 for "not logged".
func msDuration(ms int64) time.Duration {
	if ms < 0 {
		return -1
	}
	if ms > int64(time.Duration(1<<63-1)/time.Millisecond) {
		return time.Duration(1<<63 - 1)
	}
	return time.Duration(ms) * time.Millisecond
}

// parseLogTime reads %START_TIME%: RFC 3339 by default; for custom formats such as
// "05/12/2019T16:14:53+0000 1575562493" any word that is RFC 3339 or Unix seconds or
// milliseconds. Zero when none is.
func parseLogTime(s string) time.Time {
	for _, w := range strings.Fields(s) {
		if t, err := time.Parse(time.RFC3339Nano, w); err == nil {
			return t.UTC()
		}
	}
	for _, w := range strings.Fields(s) {
		if !isDigits(w) {
			continue
		}
		n, err := strconv.ParseInt(w, 10, 64)
		switch {
		case err != nil:
		case len(w) == 10:
			return time.Unix(n, 0).UTC()
		case len(w) == 13:
			return time.UnixMilli(n).UTC()
		}
	}
	return time.Time{}
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isUpperWord accepts flags Envoy may add after this list was written: 2 to 6 capitals.
func isUpperWord(s string) bool {
	if len(s) < 2 || len(s) > 6 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}
