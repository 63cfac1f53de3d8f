package ztunnel

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseLineFormats(t *testing.T) {
	tests := []struct {
		name, line                  string
		level, target, message, key string
		value                       string
	}{
		{"plain, tabs", "2024-07-26T17:18:00.953004Z\terror\taccess\tconnection complete\tsrc.addr=10.244.0.9:58592 dst.addr=10.244.0.10:15008 direction=\"outbound\" duration=\"10002ms\" error=\"io error: deadline has elapsed\"",
			"error", "access", "connection complete", "dst.addr", "10.244.0.10:15008"},
		{"plain, spaces and a tool's prefix", "ztunnel-abc | 2024-07-26T17:18:00.953004Z     warn    access  connection failed       src.addr=1.2.3.4:5 error=\"no healthy upstream: 10.43.0.1:443\"",
			"warn", "access", "connection failed", "error", "no healthy upstream: 10.43.0.1:443"},
		{"spans after the target", "2025-08-05T10:16:21.909771Z error proxy::h2::client:proxy{wl=perf/tmp-shell}:outbound{id=7ed3}  Error in HBONE connection handshake: Error { kind: GoAway(b\"\", FRAME_SIZE_ERROR, Library) }",
			"error", "proxy::h2::client", "Error in HBONE connection handshake: Error { kind: GoAway(b\"\", FRAME_SIZE_ERROR, Library) }", "", ""},
		{"escaped quote in a value", `2024-01-01T00:00:00Z error access connection complete error="io error: invalid peer certificate: Other(SanError([Spiffe { trust_domain: \"\" }]))"`,
			"error", "access", "connection complete", "error", `io error: invalid peer certificate: Other(SanError([Spiffe { trust_domain: "" }]))`},
		{"a value clipped before its quote", `2024-01-01T00:00:00Z error access connection complete error="identity error: signing gRPC error`,
			"error", "access", "connection complete", "error", "identity error: signing gRPC error"},
		{"JSON", `ztunnel-2jrcl istio-proxy {"level":"error","time":"2026-02-23T11:08:35.588089Z","scope":"ztunnel::proxy::h2","message":"ping error: broken pipe","bytes_sent":12}`,
			"error", "proxy::h2", "ping error: broken pipe", "bytes_sent", "12"},
		{"before 1.22", "2023-11-15T15:57:06.772282Z  WARN outbound{id=9ad7}: ztunnel::proxy::outbound: failed dur=10.000982079s err=io error: deadline has elapsed",
			"warn", "proxy::outbound", "failed", "err", "io error: deadline has elapsed"},
		{"without timestamp and level", `access    connection complete    src.addr=10.201.47.192:58360 direction="outbound"`,
			"", "access", "connection complete", "direction", "outbound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, ok := ParseLine(tc.line)
			if !ok {
				t.Fatal("not read as ztunnel's")
			}
			if l.Level != tc.level || l.Target != tc.target || l.Message != tc.message {
				t.Errorf("level %q, target %q, message %q", l.Level, l.Target, l.Message)
			}
			if tc.key != "" && l.Fields[tc.key] != tc.value {
				t.Errorf("%s = %q, want %q (fields %v)", tc.key, l.Fields[tc.key], tc.value, l.Fields)
			}
		})
	}
}

func TestNotZtunnel(t *testing.T) {
	for _, line := range []string{
		`[2026-01-01T00:00:00.000Z] "GET /api HTTP/1.1" 503 UF upstream_reset_before_response_started{connection_failure} - "-" 0 91 2 - "-" "curl/8" "id" "reviews:9080" "10.0.0.7:9080" outbound|9080||reviews.default.svc.cluster.local`,
		`2024-05-01T10:00:00.000000Z	warning	envoy config external/envoy/source/common/config/grpc_stream.h:191	StreamAggregatedResources gRPC config stream to xds-grpc closed`,
		`upstream connect error or disconnect/reset before headers. reset reason: connection termination`,
		`{"level":"info","msg":"an application's JSON log"}`,
	} {
		if l, ok := ParseLine(line); ok {
			t.Errorf("read as ztunnel's: %q → %+v", line, l)
		}
	}
}

func TestKind(t *testing.T) {
	tests := []struct {
		line string
		want Kind
	}{
		// Before 1.23 ztunnel did not name the NetworkPolicy: a timeout toward 15008 is read as HBONE blocked.
		{`2024-01-01T00:00:00Z error access connection complete dst.addr=10.0.0.1:15008 error="io error: deadline has elapsed"`, HBONEBlocked},
		{`2024-01-01T00:00:00Z error access connection complete dst.addr=10.0.0.1:8080 error="io error: deadline has elapsed"`, Timeout},
		{`2024-01-01T00:00:00Z error access connection complete error="connection closed due to policy rejection: explicitly denied by: shop/deny-all"`, PolicyDenied},
		// istiod closes xDS streams every 30 minutes: the reconnect is not a problem.
		{`2023-01-01T00:00:00Z  WARN xds{id=1}: ztunnel::xds::client: XDS client error: gRPC error (Unknown error): error reading a body from connection: stream closed because of a broken pipe`, ""},
		// A healthy connection, and one closed with no bytes by a TCP probe.
		{`2024-01-01T00:00:00Z info access connection complete src.addr=10.0.0.2:4000 dst.addr=10.0.0.1:8080 bytes_sent=0 bytes_recv=0 duration="0ms"`, ""},
		// Logged at info, but a failure.
		{`2024-01-01T00:00:00Z info inpod::statemanager retrying workload failed: failed to bind to address [::1]:15053: Cannot assign requested address (os error 99)`, NotEnrolled},
		// An error ztunnel does not explain.
		{`2024-01-01T00:00:00Z error access connection complete error="something new"`, Other},
	}
	for _, tc := range tests {
		l, ok := ParseLine(tc.line)
		if !ok {
			t.Fatalf("not ztunnel's: %s", tc.line)
		}
		if got := l.Kind(); got != tc.want {
			t.Errorf("%s\n  kind %q, want %q", tc.line, got, tc.want)
		}
	}
}

// TestRealHealthyLinesAreQuiet reads the real-world corpus's ambient controls: every line
// ztunnel printed there reads as its own, and none reports a problem.
func TestRealHealthyLinesAreQuiet(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join("..", "testdata", "realworld", "istio-ambient-*"))
	if len(dirs) == 0 {
		t.Fatal("no ambient cases in testdata/realworld")
	}
	controls := 0
	for _, dir := range dirs {
		meta, err := os.ReadFile(filepath.Join(dir, "case.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(meta), "\nkind: healthy\n") {
			continue
		}
		controls++
		f, err := os.Open(filepath.Join(dir, "input.txt"))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if l, ok := ParseLine(sc.Text()); ok {
				if k := l.Kind(); k != "" {
					t.Errorf("%s: a healthy line reads as %s: %s", filepath.Base(dir), k, sc.Text())
				}
			} else if k, ok := Classify(sc.Text()); ok {
				t.Errorf("%s: a healthy line holds a %s error: %s", filepath.Base(dir), k, sc.Text())
			}
		}
		f.Close()
	}
	if controls < 10 {
		t.Errorf("%d ambient controls, want at least 10", controls)
	}
}

func TestUnknownSource(t *testing.T) {
	// ztunnel's UnknownSourceWorkload (src/proxy.rs at 1.30.3), in an access-log line.
	l, ok := ParseLine(`2025-01-01T00:00:00.000000Z	warn	access	connection failed	src.addr=10.0.0.9:4000 dst.addr=10.0.0.7:8080 direction="outbound" error="failed to fetch information about local workload: 10.0.0.9"`)
	if !ok || l.Kind() != UnknownSource {
		t.Errorf("kind %q (%v)", l.Kind(), ok)
	}
}
