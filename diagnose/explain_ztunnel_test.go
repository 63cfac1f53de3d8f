package diagnose

import (
	"strings"
	"testing"
	"time"
)

func TestExplainZtunnelNamesTheDestination(t *testing.T) {
	line := `2024-07-26T17:18:00.953004Z	error	access	connection complete	src.addr=10.244.0.9:58592 dst.addr=10.244.0.10:15008 dst.hbone_addr=10.244.0.10:80 dst.workload="echo-66d88ff694-pnk6h" dst.namespace="%s" direction="outbound" bytes_sent=0 bytes_recv=0 duration="10002ms" error="connection timed out, maybe a NetworkPolicy is blocking HBONE port 15008: deadline has elapsed"`
	for _, tc := range []struct{ ns, command string }{
		{"shop", "kubectl get networkpolicy -n shop -o yaml"},
		// A name that is not a Kubernetes name never reaches a command.
		{"$(touch /tmp/x)", "kubectl get networkpolicy -n NAMESPACE -o yaml"},
	} {
		r, err := Explain(strings.Replace(line, "%s", tc.ns, 1), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Findings) != 1 || r.Findings[0].Code != string(CodeHBONEBlocked) {
			t.Fatalf("findings %+v; want MESH1901 alone", r.Findings)
		}
		f := r.Findings[0]
		if f.Fix.Command != tc.command || !strings.Contains(f.Fix.Summary, "echo-66d88ff694-pnk6h") {
			t.Errorf("fix %+v; want %q and the destination named", f.Fix, tc.command)
		}
	}
}

func TestExplainZtunnelLeavesEnvoyReadingsAlone(t *testing.T) {
	// ztunnel's own lines are not read as Envoy's: the reset here is HBONE's, not an upstream's.
	in := "2025-08-05T10:16:21.909771Z\terror\tproxy::h2::client:proxy{wl=perf/tmp-shell}:outbound{id=7ed3}\tError in HBONE connection handshake: Error { kind: GoAway(b\"\", FRAME_SIZE_ERROR, Library) }\n" +
		"2025-08-05T10:16:21.909900Z\terror\taccess\tconnection complete\tsrc.addr=10.0.0.2:4000 dst.addr=10.0.0.3:15008 direction=\"outbound\" error=\"http2 handshake failed: connection reset by peer\""
	r, err := Explain(in, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Findings) != 1 || r.Findings[0].Code != string(CodeHBONEProtocol) || r.Findings[0].Evidence[0].Value != 2 {
		t.Errorf("findings %+v; want MESH1903 from both lines, nothing else", r.Findings)
	}
}
