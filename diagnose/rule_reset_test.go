package diagnose

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

func TestUpstreamResetRule(t *testing.T) {
	race := upHealthyInterval()
	setCounter(race, upReviews, "upstream_cx_destroy_remote_with_active_rq", 20, 9)
	race.AccessLog = append(race.AccessLog, logLines(2, 503, "UC", "upstream_reset_before_response_started{connection_termination}", upReviews, time.Millisecond)...)

	// The line from istio/istio#45802, with only the access log.
	issueLine := &Snapshot{AccessLog: logLines(1, 503, "UC", "upstream_reset_before_response_started{connection_termination}", "outbound|80||health-api.production.svc.cluster.local", 0)}

	raceIdle := upHealthy()
	setCounter(raceIdle, upReviews, "upstream_cx_destroy_remote_with_active_rq", 90, 0)
	raceIdle.Config.Clusters[0].IdleTimeout = 30 * time.Second

	raceInbound := upHealthy()
	setCounter(raceInbound, upInbound, "upstream_cx_destroy_remote_with_active_rq", 60, 0)
	raceInbound.Pod = &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "productpage-v1-abc", Namespace: "default", Labels: map[string]string{"app": "productpage"}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{
			{Name: "productpage", RestartCount: 4, LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled"}}},
			{Name: "istio-proxy", RestartCount: 0},
		}},
	}

	// Plaintext (tls DISABLE) refused by sidecars that require mTLS fails with UC too, on every
	// request; that is the MTLSRule's. The endpoints carry no tlsMode, as istiod sends them.
	plaintextRefused := upHealthyInterval()
	setCounter(plaintextRefused, upReviews, "upstream_cx_destroy_remote_with_active_rq", 0, 300)
	plaintextRefused.Config.Clusters[0].TLSMode = envoyadmin.TLSModePlaintext
	for i := range plaintextRefused.Config.Endpoints[0].Endpoints {
		plaintextRefused.Config.Endpoints[0].Endpoints[i].TLSMode = ""
	}

	remote := upHealthyInterval()
	setCounter(remote, upReviews, "upstream_rq_rx_reset", 0, 15)
	remote.Config.Clusters[0].HTTP2 = true

	refused := upHealthy()
	refused.AccessLog = append(refused.AccessLog, logLines(3, 503, "UR", "upstream_reset_before_response_started{remote_refused_stream_reset}", upReviews, 0)...)

	timeoutResets := upHealthyInterval()
	setCounter(timeoutResets, upReviews, "upstream_rq_tx_reset", 0, 12)
	setCounter(timeoutResets, upReviews, "upstream_rq_timeout", 0, 12)

	local := upHealthyInterval()
	setCounter(local, upReviews, "upstream_rq_tx_reset", 0, 20)
	setCounter(local, upReviews, "upstream_rq_timeout", 0, 5)
	local.AccessLog = append(local.AccessLog, logLines(2, 0, "DC", "downstream_remote_disconnect", upReviews, time.Second)...)

	runUpCases(t, UpstreamResetRule{}, []upCase{
		{name: "keep-alive race over the window", snap: race, want: []upWant{{
			code: CodeKeepAliveRace, subject: upReviews, severity: SeverityError,
			values:  map[string]float64{"upstream_cx_destroy_remote_with_active_rq": 0.3, "access-log lines with UC": 2, "pool idle timeout (not set": 3600000},
			explain: []string{"keep-alive race", "Node.js 5s", "for up to 1h;"},
			fix:     []string{"idleTimeout: 4s", "kind: DestinationRule", "host: reviews.default.svc.cluster.local"},
		}}},
		{name: "the UC line of istio#45802, log only", snap: issueLine, want: []upWant{{
			code: CodeKeepAliveRace, subject: "outbound|80||health-api.production.svc.cluster.local", severity: SeverityWarning,
			values: map[string]float64{"access-log lines with UC": 1},
			fix:    []string{"namespace: production", "idleTimeout: 4s"},
		}}},
		{name: "idle timeout already set", snap: raceIdle, want: []upWant{{
			code: CodeKeepAliveRace, subject: upReviews,
			values:  map[string]float64{"pool idle timeout": 30000},
			explain: []string{"for up to 30s"},
		}}},
		{name: "local application, and it restarts", snap: raceInbound, want: []upWant{{
			code: CodeKeepAliveRace, subject: upInbound,
			explain: []string{"productpage restarted 4 times (last: OOMKilled)"},
			fix:     []string{"kind: Sidecar", "inboundConnectionPool", "app: productpage"},
		}}},
		{name: "plaintext refused on every request is not a keep-alive race", snap: plaintextRefused},
		{name: "HTTP/2 upstream resets streams", snap: remote, want: []upWant{{
			code: CodeRemoteReset, subject: upReviews, severity: SeverityError,
			values:  map[string]float64{"upstream_rq_rx_reset": 0.5},
			texts:   map[string]string{"protocol": "HTTP/2"},
			explain: []string{"GOAWAY"},
			fix:     []string{"preStop", "terminationGracePeriodSeconds"},
		}}},
		{name: "refused streams in the log", snap: refused, want: []upWant{{
			code: CodeRemoteReset, subject: upReviews,
			values:  map[string]float64{"refused streams": 3},
			explain: []string{"maximum of concurrent streams"},
		}}},
		{name: "local resets all explained by timeouts", snap: timeoutResets},
		{name: "local resets beyond timeouts, callers cancel", snap: local, want: []upWant{{
			code: CodeLocalReset, subject: upReviews, severity: SeverityWarning,
			values:  map[string]float64{"upstream_rq_tx_reset": round(20.0/30, 3), "upstream_rq_timeout": round(5.0/30, 3), "not explained by timeouts": 15, "DC for the same upstream": 2},
			explain: []string{"Callers closed their connection"},
		}}},
	})
}
