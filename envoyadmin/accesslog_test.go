package envoyadmin

import (
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }

// Every line of the access_log captures that is not blank or a '#' comment is an access-log
// line, and every one must parse.
func TestParseAccessLogCapturesParseEveryLine(t *testing.T) {
	for _, file := range captures.Files(t, "access_log") {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, l := range strings.Split(string(data), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				want++
			}
		}
		entries, lineErrs, err := ParseAccessLog(bytes.NewReader(data))
		if err != nil || len(lineErrs) != 0 {
			t.Errorf("%s: err %v, line errors %+v", file, err, lineErrs)
		}
		if len(entries) != want {
			t.Errorf("%s: %d entries, want %d", file, len(entries), want)
		}
	}
}

func parseCapture(t *testing.T, rel string) []AccessLogEntry {
	t.Helper()
	entries, lineErrs, err := ParseAccessLog(bytes.NewReader(captures.Read(t, rel)))
	if err != nil || len(lineErrs) != 0 {
		t.Fatalf("%s: err %v, line errors %+v", rel, err, lineErrs)
	}
	return entries
}

func checkEntry(t *testing.T, got, want AccessLogEntry) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entry on line %d =\n%+v\nwant\n%+v", want.Line, got, want)
	}
}

func TestParseAccessLogGitHubIssues(t *testing.T) {
	got := parseCapture(t, "access_log/github-issues-istio-error-flag-lines.log")
	if len(got) != 5 {
		t.Fatalf("%d entries, want 5", len(got))
	}
	// istio/istio#45802: no [START_TIME], Istio 1.17 format, 503 UC.
	checkEntry(t, got[0], AccessLogEntry{
		Line: 3, Method: "GET", Path: "/v1/status", Protocol: "HTTP/1.1", Code: 503,
		Flags: []string{"UC"}, Details: "upstream_reset_before_response_started{connection_termination}",
		BytesReceived: 0, BytesSent: 95, Duration: 0, UpstreamServiceTime: -1,
		Authority: "health.abc.com", UpstreamHost: "10.80.47.192:8181",
		UpstreamCluster: "outbound|80||health-api.production.svc.cluster.local", Format: "istio",
	})
	if _, reason, _ := ParseResponseCodeDetails(got[0].Details); reason != "connection termination" {
		t.Errorf("reset reason of #45802 = %q", reason)
	}
	// istio/istio#29109: kubectl --timestamps prefix, Istio 1.3-1.8 format, an HTTP 500 and two
	// PassthroughCluster TCP connections.
	checkEntry(t, got[1], AccessLogEntry{
		Line: 5, Timestamp: mustTime(t, "2020-11-22T20:04:32.765Z"), Method: "GET", Path: "/products",
		Protocol: "HTTP/1.1", Code: 500, BytesSent: 122, Duration: ms(11939), UpstreamServiceTime: ms(11933),
		Authority: "172.17.0.2:30164", UpstreamHost: "127.0.0.1:8080",
		UpstreamCluster: "inbound|8080|http-8080|scrappers-service.default.svc.cluster.local",
		RouteName:       "default", Format: "istio-1.3",
	})
	checkEntry(t, got[2], AccessLogEntry{
		Line: 6, Timestamp: mustTime(t, "2020-11-22T20:04:33.157Z"), BytesReceived: 4841, BytesSent: 9845236,
		Duration: ms(16230), UpstreamServiceTime: -1, UpstreamHost: "104.20.28.24:443",
		UpstreamCluster: "PassthroughCluster", Format: "istio-1.3",
	})
	if got[3].Line != 7 || got[3].Duration != ms(14950) || got[3].BytesSent != 3867470 {
		t.Errorf("second TCP line = %+v", got[3])
	}
	// envoyproxy/envoy#9242: a custom key=value format, read leniently.
	checkEntry(t, got[4], AccessLogEntry{
		Line: 9, Timestamp: time.Unix(1575562493, 0).UTC(), Method: "POST", Path: "/StudentService/get",
		Protocol: "HTTP/2", Code: 200, Flags: []string{"UT"}, Details: "upstream_response_timeout",
		BytesReceived: 84, BytesSent: 0, Duration: ms(15001), UpstreamServiceTime: -1,
		Authority: "localhost:443", UpstreamHost: "127.0.0.1:7000", Format: "kv",
	})
}

func TestParseAccessLogKialiWaypoint(t *testing.T) {
	got := parseCapture(t, "access_log/kiali-istio-waypoint-access.log")
	if len(got) != 16 {
		t.Fatalf("%d entries, want 16", len(got))
	}
	for _, e := range got {
		if e.Format != "istio" || e.Code != 200 || len(e.Flags) != 0 || e.Details != "via_upstream" ||
			!strings.HasPrefix(e.UpstreamCluster, "inbound-vip|") || e.RouteName != "default" {
			t.Errorf("line %d = %+v", e.Line, e)
		}
	}
	checkEntry(t, got[0], AccessLogEntry{
		Line: 1, Timestamp: mustTime(t, "2025-01-30T12:10:13.279Z"), Method: "GET", Path: "/details/0",
		Protocol: "HTTP/1.1", Code: 200, Details: "via_upstream", BytesSent: 178,
		Duration: 0, UpstreamServiceTime: 0, Authority: "details:9080",
		UpstreamHost:    "envoy://connect_originate/10.244.0.32:9080",
		UpstreamCluster: "inbound-vip|9080|http|details.bookinfo.svc.cluster.local",
		RouteName:       "default", Format: "istio",
	})
	last := got[15]
	if last.Line != 16 || last.Path != "/productpage" || last.BytesSent != 15072 || last.Duration != ms(21) ||
		last.UpstreamServiceTime != ms(20) || last.UpstreamHost != "10.244.0.39:80" ||
		last.UpstreamCluster != "inbound-vip|80|http|bookinfo-gateway-istio.bookinfo.svc.cluster.local" {
		t.Errorf("last entry = %+v", last)
	}
}

func TestParseAccessLogDatadog(t *testing.T) {
	got := parseCapture(t, "access_log/datadog-istio-1.1-sidecar-access.log")
	if len(got) != 4 {
		t.Fatalf("%d entries, want 4", len(got))
	}
	checkEntry(t, got[0], AccessLogEntry{
		Line: 1, Timestamp: mustTime(t, "2019-03-06T09:31:27.354Z"), Method: "GET", Path: "/status/418",
		Protocol: "HTTP/1.1", Code: 418, BytesSent: 135, Duration: ms(11), UpstreamServiceTime: ms(10),
		Authority: "httpbin:8000", UpstreamHost: "172.30.146.73:80",
		UpstreamCluster: "outbound|8000||httpbin.default.svc.cluster.local", Format: "istio-1.1",
	})
	if e := got[1]; e.Format != "istio-1.1" || e.UpstreamCluster != "inbound|8000|http|httpbin.default.svc.cluster.local" ||
		e.Duration != ms(5) || e.UpstreamServiceTime != ms(2) || e.RouteName != "" {
		t.Errorf("inbound 1.1 line = %+v", e)
	}
	if e := got[2]; e.Format != "envoy" || e.Code != 200 || e.BytesSent != 11187 || e.Duration != ms(107) ||
		!strings.HasPrefix(e.Path, "/v1/gifs/search?q=totalmete+s&") || e.Authority != "api.giphy.com" ||
		e.UpstreamHost != "127.0.0.1:8000" || e.UpstreamCluster != "" || !e.Timestamp.Equal(mustTime(t, "2018-07-13T15:56:58.312Z")) {
		t.Errorf("plain Envoy line = %+v", e)
	}
	if e := got[3]; e.Format != "envoy" || e.Path != "/server_info" || e.UpstreamServiceTime != -1 ||
		e.Duration != ms(1) || e.UpstreamHost != "" || e.Authority != "64.145.79.247:8001" {
		t.Errorf("Datadog agent line = %+v", e)
	}
}

func TestParseAccessLogFormats(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want AccessLogEntry
	}{
		{
			name: "CRI log-file prefix, Istio 1.9+ TCP connect failure with transport reason",
			in:   `2026-01-01T00:00:00.000000001Z stdout F [2026-01-01T00:00:00.000Z] "- - -" 0 UF,URX - - "delayed connect error: 111" 0 0 1 - "-" "-" "-" "-" "10.1.2.3:5432" outbound|5432||db.data.svc.cluster.local - 10.96.0.9:5432 10.1.0.4:40000 - -`,
			want: AccessLogEntry{Line: 1, Timestamp: mustTime(t, "2026-01-01T00:00:00Z"), Flags: []string{"UF", "URX"},
				TransportFailure: "delayed connect error: 111", Duration: ms(1), UpstreamServiceTime: -1,
				UpstreamHost: "10.1.2.3:5432", UpstreamCluster: "outbound|5432||db.data.svc.cluster.local", Format: "istio"},
		},
		{
			name: "Istio JSON encoding",
			in:   `{"start_time":"2026-02-03T04:05:06.789Z","method":"GET","path":"/api","protocol":"HTTP/2","response_code":503,"response_flags":"UO","response_code_details":"upstream_reset_before_response_started{overflow}","connection_termination_details":null,"upstream_transport_failure_reason":null,"bytes_received":0,"bytes_sent":81,"duration":2,"upstream_service_time":null,"x_forwarded_for":null,"user_agent":"curl/8","request_id":"x","authority":"api:80","upstream_host":null,"upstream_cluster":"outbound|80||api.default.svc.cluster.local","upstream_local_address":null,"downstream_local_address":"10.0.0.1:80","downstream_remote_address":"10.0.0.2:1234","requested_server_name":null,"route_name":"default"}`,
			want: AccessLogEntry{Line: 1, Timestamp: mustTime(t, "2026-02-03T04:05:06.789Z"), Method: "GET", Path: "/api",
				Protocol: "HTTP/2", Code: 503, Flags: []string{"UO"}, Details: "upstream_reset_before_response_started{overflow}",
				BytesSent: 81, Duration: ms(2), UpstreamServiceTime: -1, Authority: "api:80",
				UpstreamCluster: "outbound|80||api.default.svc.cluster.local", RouteName: "default", Format: "json"},
		},
		{
			name: "JSON with string numbers and kubectl timestamp",
			in:   `2026-01-01T00:00:00.5Z {"response_code":"504","response_flags":"UT","duration":"15000","upstream_service_time":"-","upstream_cluster":"outbound|9080||reviews.default.svc.cluster.local"}`,
			want: AccessLogEntry{Line: 1, Code: 504, Flags: []string{"UT"}, Duration: ms(15000), UpstreamServiceTime: -1,
				UpstreamCluster: "outbound|9080||reviews.default.svc.cluster.local", Format: "json"},
		},
		{
			name: "kubectl logs --prefix",
			in:   `[pod/reviews-v1-abc/istio-proxy] [2026-01-01T00:00:00.000Z] "GET /r HTTP/1.1" 404 NR route_not_found - "-" 0 0 0 - "-" "curl" "id" "reviews" "-" - - 10.0.0.1:9080 10.0.0.2:5000 - -`,
			want: AccessLogEntry{Line: 1, Timestamp: mustTime(t, "2026-01-01T00:00:00Z"), Method: "GET", Path: "/r",
				Protocol: "HTTP/1.1", Code: 404, Flags: []string{"NR"}, Details: "route_not_found",
				UpstreamServiceTime: -1, Authority: "reviews", Format: "istio"},
		},
		{
			name: "user agent with a quote inside",
			in:   `[2026-01-01T00:00:00.000Z] "GET / HTTP/1.1" 200 - 0 5 3 2 "-" "odd "agent"/1 (x)" "id" "host" "10.0.0.9:80"`,
			want: AccessLogEntry{Line: 1, Timestamp: mustTime(t, "2026-01-01T00:00:00Z"), Method: "GET", Path: "/",
				Protocol: "HTTP/1.1", Code: 200, BytesSent: 5, Duration: ms(3), UpstreamServiceTime: ms(2),
				Authority: "host", UpstreamHost: "10.0.0.9:80", Format: "envoy"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, lineErrs, err := ParseAccessLog(strings.NewReader(tt.in + "\n"))
			if err != nil || len(lineErrs) != 0 || len(got) != 1 {
				t.Fatalf("entries %+v, line errors %+v, err %v", got, lineErrs, err)
			}
			checkEntry(t, got[0], tt.want)
		})
	}
}

func TestParseAccessLogSkipsAndErrors(t *testing.T) {
	in := strings.Join([]string{
		`# a comment`,
		``,
		`[2026-01-01 00:00:00.000][15][warning][config] [source/common/config/grpc_stream.h:191] StreamAggregatedResources gRPC config stream closed`,
		"2026-01-01T00:00:00.000000Z\tinfo\txdsproxy\tconnected to upstream XDS server: istiod.istio-system.svc:15012",
		"2026-01-01T00:00:01.000000001Z 2026-01-01T00:00:00.000000Z\twarning\tenvoy config external/envoy/source/common/config/grpc_stream.h:193\tStreamAggregatedResources gRPC config stream to xds-grpc closed: 13,\tthread=15",
		`{"level":"info","time":"2026-01-01T00:00:00Z","msg":"Envoy proxy is ready"}`,
		`2026-01-01T00:00:00.000000001Z stdout P [2026-01-01T00:00:00.000Z] "GET /long HTTP/1.1" 200 - via_upstream - "-" 0 3 4 - "-" "cu`,
		`2026-01-01T00:00:00.000000002Z stdout F rl" "id" "host" "10.0.0.1:80" outbound|80||a.b.svc.cluster.local - - - - -`,
		`Istio is the best`, // line 9
		`[2026-01-01T00:00:00.000Z] "GET / HTTP/1.1" 200`,                        // line 10
		`"GET / HTTP/1.1" abc - - - "-" 0 0 0 0 "-" "-" "-" "-" "-" c - - - - -`, // line 11
		`{"broken json`,                                      // line 12
		`{"status":"ok"}`,                                    // line 13
		`"GET / HTTP/1.1 200 - 0 0 0 0 "-" "-"`,              // line 14
		`[2026-01-01T00:00:00.000Z] hello world`,             // line 15
		`"GET / HTTP/1.1" 200 ! 0 0 0 0 "-" "-" "-" "-" "-"`, // line 16
	}, "\n")
	got, lineErrs, err := ParseAccessLog(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("entries = %+v, want the one joined from CRI partial records", got)
	}
	if e := got[0]; e.Line != 7 || e.Path != "/long" || e.BytesSent != 3 || e.Duration != ms(4) ||
		e.UpstreamCluster != "outbound|80||a.b.svc.cluster.local" {
		t.Errorf("joined partial line = %+v", e)
	}
	var lines []int
	for _, le := range lineErrs {
		lines = append(lines, le.Line)
		if le.Reason == "" || le.Text == "" || !strings.Contains(le.Error(), "line ") {
			t.Errorf("line error without reason or text: %+v", le)
		}
	}
	if want := []int{9, 10, 11, 12, 13, 14, 15, 16}; !reflect.DeepEqual(lines, want) {
		t.Errorf("line errors on lines %v, want %v: %+v", lines, want, lineErrs)
	}
}

type failingReader struct{ data io.Reader }

func (r failingReader) Read(p []byte) (int, error) {
	n, err := r.data.Read(p)
	if errors.Is(err, io.EOF) {
		return n, errors.New("connection reset")
	}
	return n, err
}

func TestParseAccessLogReaderErrorAndLongLine(t *testing.T) {
	good := `"GET / HTTP/1.1" 200 - 0 0 0 0 "-" "-" "-" "-" "-"` + "\n"
	got, _, err := ParseAccessLog(failingReader{strings.NewReader(good)})
	if err == nil || len(got) != 1 {
		t.Errorf("failing reader: entries %d, err %v; want the entry read before and an error", len(got), err)
	}
	long := `"GET /` + strings.Repeat("a", maxAccessLogLine) + ` HTTP/1.1" 200 - 0 0 0 0 "-" "-" "-" "-" "-"` + "\n"
	got, lineErrs, err := ParseAccessLog(strings.NewReader(long + good))
	if err != nil || len(got) != 1 || got[0].Line != 2 || len(lineErrs) != 1 || lineErrs[0].Line != 1 {
		t.Errorf("long line: entries %+v, line errors %+v, err %v", got, lineErrs, err)
	}
}
