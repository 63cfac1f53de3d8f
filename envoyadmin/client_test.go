package envoyadmin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestClientRequests pins the exact requests each method sends: filtered, usedonly stats and
// nothing unfiltered.
func TestClientRequests(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.RequestURI()
		_, _ = w.Write([]byte("ok " + r.URL.Path))
	}))
	defer srv.Close()
	c := &AdminClient{BaseURL: srv.URL + "/", HTTP: srv.Client()}
	ctx := context.Background()
	tests := []struct {
		name string
		call func() ([]byte, error)
		want string
	}{
		{"stats text", func() ([]byte, error) { return c.Stats(ctx, StatsText, "upstream_rq|istio_") }, "/stats?usedonly&filter=upstream_rq%7Cistio_"},
		{"stats json", func() ([]byte, error) { return c.Stats(ctx, StatsJSON, `server\.uptime`) }, "/stats?format=json&usedonly&filter=server%5C.uptime"},
		{"stats prometheus", func() ([]byte, error) { return c.Stats(ctx, StatsPrometheus, "a b") }, "/stats/prometheus?usedonly&filter=a+b"},
		{"stats unfiltered", func() ([]byte, error) { return c.Stats(ctx, StatsPrometheus, "") }, "/stats/prometheus?usedonly"},
		{"config dump eds", func() ([]byte, error) { return c.ConfigDump(ctx, true) }, "/config_dump?include_eds"},
		{"config dump", func() ([]byte, error) { return c.ConfigDump(ctx, false) }, "/config_dump"},
		{"clusters", func() ([]byte, error) { return c.Clusters(ctx) }, "/clusters?format=json"},
		{"certs", func() ([]byte, error) { return c.Certs(ctx) }, "/certs"},
		{"server info", func() ([]byte, error) { return c.ServerInfo(ctx) }, "/server_info"},
	}
	for _, tt := range tests {
		got = ""
		b, err := tt.call()
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s: requested %q, want %q", tt.name, got, tt.want)
		}
		if !strings.HasPrefix(string(b), "ok /") {
			t.Errorf("%s: body %q, want the server's answer", tt.name, b)
		}
	}
	if _, err := c.Stats(ctx, "xml", ""); err == nil || !strings.Contains(err.Error(), `unknown format "xml"`) {
		t.Errorf("Stats with an unknown format: %v", err)
	}
}

// TestClientErrors checks that every failure names the endpoint and says what to do.
func TestClientErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		status  int
		want    []string
	}{
		{"503", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no healthy upstream\n\n  draining", http.StatusServiceUnavailable)
		}, 503, []string{"GET /certs", "status 503 Service Unavailable", `"no healthy upstream draining"`, "not ready"}},
		{"404", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "invalid path. admin commands are:", http.StatusNotFound)
		}, 404, []string{"GET /certs", "status 404", "does not serve that endpoint"}},
		{"500 long body", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, strings.Repeat("é", 1000), http.StatusInternalServerError)
		}, 500, []string{"GET /certs", "status 500", "…", "logs"}},
		{"HTML page", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<!DOCTYPE html><html><title>Login</title></html>"))
		}, 200, []string{"GET /certs", "HTML page", "Envoy admin port (15000)"}},
		{"HTML without content type", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write([]byte("\n  <html><body>app</body></html>"))
		}, 200, []string{"GET /certs", "HTML page"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			c := &AdminClient{BaseURL: srv.URL, HTTP: srv.Client()}
			_, err := c.Certs(context.Background())
			checkEndpointError(t, err, "/certs", tt.status, tt.want)
		})
	}
}

func TestClientTimeouts(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // a proxy that never answers
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	want := []string{"did not answer in time", "longer timeout"}

	t.Run("context deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		c := &AdminClient{BaseURL: srv.URL, HTTP: srv.Client()}
		_, err := c.ConfigDump(ctx, true)
		checkEndpointError(t, err, "/config_dump?include_eds", 0, append(want, "GET /config_dump?include_eds"))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
		}
	})
	t.Run("http client timeout", func(t *testing.T) {
		hc := srv.Client()
		hc.Timeout = 50 * time.Millisecond
		c := &AdminClient{BaseURL: srv.URL, HTTP: hc}
		_, err := c.Stats(context.Background(), StatsPrometheus, DefaultStatsFilter)
		checkEndpointError(t, err, "/stats/prometheus?usedonly&filter=", 0, append(want, "GET /stats/prometheus"))
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		c := &AdminClient{BaseURL: srv.URL, HTTP: srv.Client()}
		_, err := c.ServerInfo(ctx)
		checkEndpointError(t, err, "/server_info", 0, []string{"GET /server_info", "cancelled"})
	})
}

func TestClientUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	c := &AdminClient{BaseURL: url}
	_, err := c.Clusters(context.Background())
	checkEndpointError(t, err, "/clusters?format=json", 0, []string{"GET /clusters?format=json", "port-forward"})

	_, err = (&AdminClient{}).Certs(context.Background())
	checkEndpointError(t, err, "/certs", 0, []string{"no admin address", "BaseURL"})
}

func checkEndpointError(t *testing.T, err error, endpoint string, status int, want []string) {
	t.Helper()
	var ee *EndpointError
	if !errors.As(err, &ee) {
		t.Fatalf("error %v (%T), want an *EndpointError", err, err)
	}
	if !strings.HasPrefix(ee.Endpoint, endpoint) || ee.Status != status {
		t.Errorf("EndpointError{Endpoint: %q, Status: %d}, want %q, %d", ee.Endpoint, ee.Status, endpoint, status)
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not contain %q", msg, w)
		}
	}
	if len(msg) > 600 {
		t.Errorf("error is %d bytes long; the body excerpt should keep it short", len(msg))
	}
}

// TestDefaultStatsFilter checks the filter compiles and keeps, in Envoy's dotted names before tag
// extraction, the stats the diagnosis reads, and drops some that it does not.
func TestDefaultStatsFilter(t *testing.T) {
	re := regexp.MustCompile(DefaultStatsFilter)
	keep := []string{
		"cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_timeout",
		"cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_time",
		"cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_cx_connect_fail",
		"cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_pending_overflow",
		"cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_retry_limit_exceeded",
		"cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_per_try_timeout",
		"cluster.outbound|9080||ratings.default.svc.cluster.local.outlier_detection.ejections_active",
		"cluster.outbound|9080||reviews.default.svc.cluster.local.circuit_breakers.default.rq_pending_open",
		"cluster.outbound|9080||reviews.default.svc.cluster.local.membership_healthy",
		"cluster.outbound|9080||reviews.default.svc.cluster.local.ssl.connection_error",
		"cluster.outbound|9080||ratings.default.svc.cluster.local.lb_healthy_panic",
		"cluster_manager.cds.update_rejected",
		"listener_manager.lds.update_rejected",
		"listener_manager.lds.update_success",
		"http.inbound_0.0.0.0_8080.rds.inbound|8080||.update_rejected",
		"http.outbound_0.0.0.0_9080.downstream_rq_time",
		"http.outbound_0.0.0.0_9080.no_cluster",
		"http.outbound_0.0.0.0_9080.no_route",
		"http.inbound_0.0.0.0_9080.downstream_cx_destroy_remote_active_rq",
		"listener.0.0.0.0_15006.ssl.fail_verify_no_cert",
		"listener.0.0.0.0_15006.no_filter_chain_match",
		"server.uptime",
		"server.state",
		"reporter=.=destination;.;source_workload=.=productpage-v1;.;istio_requests_total",
		"istio_request_duration_milliseconds",
	}
	for _, name := range keep {
		if !re.MatchString(name) {
			t.Errorf("DefaultStatsFilter drops %q, which the diagnosis reads", name)
		}
	}
	drop := []string{
		"cluster.outbound|9080||reviews.default.svc.cluster.local.bind_errors",
		"cluster.outbound|9080||reviews.default.svc.cluster.local.version",
		"runtime.load_success",
		"wasm.envoy.wasm.runtime.null.active",
	}
	for _, name := range drop {
		if re.MatchString(name) {
			t.Errorf("DefaultStatsFilter keeps %q, which the diagnosis does not read", name)
		}
	}
}

// TestClientProxyTime keeps the Date of the latest answer: the proxy's clock, against which a
// capture judges expiry.
func TestClientProxyTime(t *testing.T) {
	date := "Tue, 16 Apr 2024 14:02:11 GMT"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/server_info" {
			w.Header().Set("Date", date)
		} else {
			w.Header()["Date"] = nil // net/http adds one unless told not to
		}
		_, _ = w.Write([]byte("{}"))
	}))
	defer srv.Close()
	c := &AdminClient{BaseURL: srv.URL, HTTP: srv.Client()}
	if _, err := c.Certs(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !c.ProxyTime().IsZero() {
		t.Errorf("ProxyTime = %v after an answer without a Date, want zero", c.ProxyTime())
	}
	if _, err := c.ServerInfo(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 4, 16, 14, 2, 11, 0, time.UTC); !c.ProxyTime().Equal(want) {
		t.Errorf("ProxyTime = %v, want %v", c.ProxyTime(), want)
	}
}
