package envoyadmin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// DefaultStatsFilter is the regex passed as /stats?filter= when sampling a live proxy. /stats on a
// big proxy is expensive (every cluster times every stat), so collection asks only for what the
// diagnosis reads: per-cluster request, connection, timeout, overflow, reset, retry, outlier and
// breaker stats, membership, TLS handshake failures, rejected xDS updates, the listeners'
// downstream request stats, the server's uptime and state, and Istio's standard metrics. Envoy
// matches it (RE2, unanchored) against the full stat name before tag extraction, so
// "reporter=.;...;istio_requests_total" is kept by "istio_".
const DefaultStatsFilter = ClusterStatTerms + "|" + DownstreamStatTerms + "|" + serverStatTerms

// ClusterStatTerms are the parts of the per-cluster stat names the diagnosis reads (requests,
// connections, timeouts, overflows, resets, retries, outlier detection, circuit breakers,
// membership, TLS, rejected updates, panic mode): a sidecar must keep these for why-slow to
// see its upstreams (install.StatsInclusions turns them into Istio's proxyStatsMatcher).
const ClusterStatTerms = `upstream_rq|upstream_cx|timeout|overflow|reset|retry|outlier_detection|` +
	`circuit_breakers|membership|ssl\.|update_rejected|update_success|lb_healthy_panic`

// DownstreamStatTerms are the parts of the listeners' and HTTP connection managers' stat names
// the diagnosis reads.
const DownstreamStatTerms = `downstream_rq|downstream_cx_(total|destroy)|no_filter_chain_match|no_cluster|no_route|rbac`

// The stat terms above match anywhere in a name, as Envoy's filter= does: a listener's
// ssl.handshake is kept by ClusterStatTerms' "ssl\.", a cluster's tx_reset by "reset".

// serverStatTerms are the server's and Istio's stats, which Istio's sidecars keep by default.
const serverStatTerms = `server\.(uptime|state|live|memory_allocated|concurrency)|control_plane|istio_`

// maxResponseBytes bounds what one admin answer may hold. Config dumps of large meshes with EDS
// run to tens of MiB; more than this means something other than Envoy is answering.
const maxResponseBytes = 512 << 20

// AdminClient fetches what the evidence folder needs from one Envoy admin API. Every method
// returns the raw answer, so it can be written to the folder as is, and sends one request: the
// caller decides how often to sample (never fast: /stats is costly on a big proxy).
type AdminClient struct {
	// BaseURL is the admin API's address, for example "http://127.0.0.1:15000".
	BaseURL string
	// HTTP sends the requests; its transport may be a port-forward. nil means http.DefaultClient.
	HTTP *http.Client

	mu   sync.Mutex
	date time.Time // the Date header of the latest answer
}

// ProxyTime returns the time the proxy stated in the Date header of its latest answer (Envoy
// dates every response), zero when it gave none. Evidence is judged against the proxy's clock:
// certificate expiry is the proxy's business, whatever the clock of the machine reading it.
func (c *AdminClient) ProxyTime() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.date
}

// EndpointError says which admin request failed and how, and its message says what to try next.
type EndpointError struct {
	// Endpoint is the request's path and query, for example "/stats/prometheus?usedonly".
	Endpoint string
	// Status is the HTTP status, 0 when no answer came.
	Status int
	// Body is the start of the answer's body, for a non-200 or non-Envoy answer.
	Body string
	// Err is the transport error, if any.
	Err error
	// hint says what to do next.
	hint string
}

func (e *EndpointError) Error() string {
	var b strings.Builder
	// The filter regex is long and the same for every stats request: leave it out.
	endpoint, _, filtered := strings.Cut(e.Endpoint, "filter=")
	if filtered {
		endpoint += "filter=…"
	}
	fmt.Fprintf(&b, "envoy admin GET %s: ", endpoint)
	var ue *url.Error
	switch {
	case errors.As(e.Err, &ue):
		b.WriteString(ue.Err.Error()) // the URL repeats the endpoint
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	case e.Status != http.StatusOK:
		fmt.Fprintf(&b, "status %d %s", e.Status, http.StatusText(e.Status))
	default:
		b.WriteString("unexpected answer")
	}
	if e.Body != "" {
		fmt.Fprintf(&b, " (body: %q)", e.Body)
	}
	if e.hint != "" {
		b.WriteString(": " + e.hint)
	}
	return b.String()
}

func (e *EndpointError) Unwrap() error { return e.Err }

// Stats fetches one stats sample in the given format, with only used stats (usedonly) and, when
// filter is not empty, only those whose name matches the regex (see DefaultStatsFilter).
func (c *AdminClient) Stats(ctx context.Context, format StatsFormat, filter string) ([]byte, error) {
	var path string
	q := []string{"usedonly"}
	switch format {
	case StatsText:
		path = "/stats"
	case StatsJSON:
		path = "/stats"
		q = append([]string{"format=json"}, q...)
	case StatsPrometheus:
		path = "/stats/prometheus"
	default:
		return nil, fmt.Errorf("envoy admin stats: unknown format %q (use %q, %q or %q)", format, StatsText, StatsJSON, StatsPrometheus)
	}
	if filter != "" {
		q = append(q, "filter="+url.QueryEscape(filter))
	}
	return c.get(ctx, path+"?"+strings.Join(q, "&"))
}

// ConfigDump fetches /config_dump, with the endpoints of every cluster when includeEDS is set.
// Envoy prints private keys as "[redacted]"; pass the answer through RedactConfigDump before
// writing it anyway, so that no other source of config dumps can leak one.
func (c *AdminClient) ConfigDump(ctx context.Context, includeEDS bool) ([]byte, error) {
	if includeEDS {
		return c.get(ctx, "/config_dump?include_eds")
	}
	return c.get(ctx, "/config_dump")
}

// Clusters fetches /clusters?format=json: hosts, health flags and per-host counters.
func (c *AdminClient) Clusters(ctx context.Context) ([]byte, error) {
	return c.get(ctx, "/clusters?format=json")
}

// Certs fetches /certs: the certificates the proxy holds, their expiry and SPIFFE identities.
func (c *AdminClient) Certs(ctx context.Context) ([]byte, error) {
	return c.get(ctx, "/certs")
}

// ServerInfo fetches /server_info: Envoy's version, state and uptime.
func (c *AdminClient) ServerInfo(ctx context.Context) ([]byte, error) {
	return c.get(ctx, "/server_info")
}

func (c *AdminClient) get(ctx context.Context, endpoint string) ([]byte, error) {
	base := strings.TrimRight(c.BaseURL, "/")
	if base == "" {
		return nil, &EndpointError{Endpoint: endpoint, Err: errors.New("no admin address"), hint: "set AdminClient.BaseURL, for example http://127.0.0.1:15000"}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+endpoint, nil)
	if err != nil {
		return nil, &EndpointError{Endpoint: endpoint, Err: err, hint: "check the admin address " + c.BaseURL}
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &EndpointError{Endpoint: endpoint, Err: err, hint: transportHint(ctx, err)}
	}
	defer resp.Body.Close()
	// Any answer, an error too, says what time the proxy thinks it is.
	if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		c.mu.Lock()
		c.date = d
		c.mu.Unlock()
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, &EndpointError{Endpoint: endpoint, Status: resp.StatusCode, Err: fmt.Errorf("reading the answer: %w", err), hint: transportHint(ctx, err)}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &EndpointError{Endpoint: endpoint, Status: resp.StatusCode, Body: excerpt(body), hint: statusHint(resp.StatusCode)}
	}
	if len(body) > maxResponseBytes {
		return nil, &EndpointError{Endpoint: endpoint, Status: resp.StatusCode, Err: fmt.Errorf("answer larger than %d MiB", maxResponseBytes>>20),
			hint: "is " + c.BaseURL + " the Envoy admin port (15000)?"}
	}
	if isHTML(resp.Header.Get("Content-Type"), body) {
		// Envoy answers these endpoints with text or JSON; an HTML page comes from something else
		// on the port (a web UI, a login page of a proxy in between) or from Envoy's admin home.
		return nil, &EndpointError{Endpoint: endpoint, Status: resp.StatusCode, Body: excerpt(body), Err: errors.New("answered with an HTML page, not Envoy admin output"),
			hint: "is " + c.BaseURL + " the Envoy admin port (15000) and not the application's?"}
	}
	return body, nil
}

func transportHint(ctx context.Context, err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return "the collection was cancelled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "the proxy did not answer in time; it may be overloaded (a big /stats or /config_dump is slow) or the port-forward stalled: retry with a longer timeout"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the connection closed mid-answer; the sidecar may have restarted: check the istio-proxy container and retry"
	default:
		return "is the admin API reachable (port-forward to port 15000 up, istio-proxy running)?"
	}
}

func statusHint(status int) string {
	switch {
	case status == http.StatusNotFound:
		return "this Envoy does not serve that endpoint (too old a version, or not an Envoy admin port)"
	case status == http.StatusServiceUnavailable:
		return "the proxy is not ready (starting, draining or shutting down): retry when the istio-proxy container is ready"
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return "something between the client and Envoy refused the request: check the port-forward and RBAC"
	case status >= 500:
		return "the proxy failed to answer: check the istio-proxy container's logs and retry"
	default:
		return "is this the Envoy admin port (15000)?"
	}
}

func isHTML(contentType string, body []byte) bool {
	if strings.HasPrefix(strings.ToLower(contentType), "text/html") {
		return true
	}
	head := bytes.ToLower(bytes.TrimSpace(body[:min(len(body), 64)]))
	return bytes.HasPrefix(head, []byte("<!doctype html")) || bytes.HasPrefix(head, []byte("<html"))
}

// excerpt returns the start of a body, on one line, for an error message.
func excerpt(body []byte) string {
	const n = 120
	s := strings.Join(strings.Fields(string(body[:min(len(body), 4*n)])), " ")
	if len(s) > n {
		s = s[:n]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return s
}
