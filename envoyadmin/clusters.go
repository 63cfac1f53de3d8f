package envoyadmin

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ParseClustersText parses GET /clusters, whose lines are "cluster::key::value" for the cluster
// ("outbound|80||a.b.svc.cluster.local::added_via_api::true",
// "...::default_priority::max_connections::1024") and "cluster::host:port::stat::value" for each
// host ("...::10.0.0.1:8080::health_flags::/failed_active_hc", "...::[::1]:80::cx_active::0").
// Cluster names contain '|' and '.' but never "::"; host addresses may (IPv6), so they are read
// up to the closing bracket. Excerpts such as `grep health_flags` output parse as well. Keys this
// parser does not know are ignored; a line that is not "a::b::c" is an error.
func ParseClustersText(r io.Reader) (*UpstreamClusters, error) {
	b := newClustersBuilder()
	other := 0 // non-blank lines without "::"
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if !strings.Contains(line, "::") {
			// What people put between pasted lines ("..."), and anything else: an input of
			// nothing but such lines is not /clusters output.
			other++
			continue
		}
		if _, rest, ok := cutLeadingTimestamp(line); ok {
			line = strings.TrimSpace(rest)
		}
		if err := b.textLine(line); err != nil {
			return nil, fmt.Errorf("/clusters line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading /clusters: %w", err)
	}
	if other > 0 && len(b.out.Clusters) == 0 {
		return nil, fmt.Errorf("no line of /clusters' format (cluster::host::stat::value) in %d lines", other)
	}
	return b.result(), nil
}

// clustersBuilder collects clusters and hosts in the order they first appear.
type clustersBuilder struct {
	out      UpstreamClusters
	clusters map[string]int         // cluster name -> index in out.Clusters
	hosts    []map[string]int       // per cluster: host address -> index in Hosts
	breakers []map[string]int       // per cluster: priority -> index in CircuitBreakers
	names    map[string]ClusterName // parsed names, since a cluster has many lines
}

func newClustersBuilder() *clustersBuilder {
	return &clustersBuilder{clusters: map[string]int{}, names: map[string]ClusterName{}}
}

func (b *clustersBuilder) cluster(name string) int {
	if i, ok := b.clusters[name]; ok {
		return i
	}
	b.out.Clusters = append(b.out.Clusters, UpstreamCluster{Name: ParseClusterName(name)})
	b.hosts = append(b.hosts, map[string]int{})
	b.breakers = append(b.breakers, map[string]int{})
	i := len(b.out.Clusters) - 1
	b.clusters[name] = i
	return i
}

func (b *clustersBuilder) host(ci int, addr string) *UpstreamHost {
	c := &b.out.Clusters[ci]
	if hi, ok := b.hosts[ci][addr]; ok {
		return &c.Hosts[hi]
	}
	c.Hosts = append(c.Hosts, UpstreamHost{Address: addr, SuccessRate: -1})
	b.hosts[ci][addr] = len(c.Hosts) - 1
	return &c.Hosts[len(c.Hosts)-1]
}

func (b *clustersBuilder) breaker(ci int, priority string) *CircuitBreaker {
	c := &b.out.Clusters[ci]
	if bi, ok := b.breakers[ci][priority]; ok {
		return &c.CircuitBreakers[bi]
	}
	c.CircuitBreakers = append(c.CircuitBreakers, CircuitBreaker{Priority: priority})
	b.breakers[ci][priority] = len(c.CircuitBreakers) - 1
	return &c.CircuitBreakers[len(c.CircuitBreakers)-1]
}

func (b *clustersBuilder) result() *UpstreamClusters {
	if b.out.Clusters == nil {
		b.out.Clusters = []UpstreamCluster{}
	}
	return &b.out
}

// textPriorities maps /clusters' circuit breaker line prefixes to the priority names of the
// config dump and the JSON format.
var textPriorities = map[string]string{"default_priority": "DEFAULT", "high_priority": "HIGH"}

func (b *clustersBuilder) textLine(line string) error {
	name, rest, ok := strings.Cut(line, "::")
	if !ok || name == "" {
		return fmt.Errorf("%q is not cluster::key::value", clipForError(line, 80))
	}
	// Cluster-level lines.
	first, tail, _ := strings.Cut(rest, "::")
	if prio, ok := textPriorities[first]; ok {
		key, value, ok := strings.Cut(tail, "::")
		if !ok {
			return fmt.Errorf("circuit breaker line %q has no value", clipForError(line, 80))
		}
		ci := b.cluster(name)
		setThreshold(b.breaker(ci, prio), key, value)
		return nil
	}
	switch first {
	case "added_via_api":
		b.out.Clusters[b.cluster(name)].AddedViaAPI = tail == "true"
		return nil
	case "outlier", "eds_service_name", "observability_name":
		b.cluster(name)
		return nil
	}
	// Host lines: the address runs to the "::" after the port, and IPv6 addresses hold "::".
	addr, statLine, err := cutHostAddress(rest)
	if err != nil {
		return fmt.Errorf("%w in %q", err, clipForError(line, 80))
	}
	stat, value, ok := strings.Cut(statLine, "::")
	if !ok {
		return fmt.Errorf("host line %q is not cluster::host::stat::value", clipForError(line, 80))
	}
	h := b.host(b.cluster(name), addr)
	setHostField(h, stat, value)
	return nil
}

// cutHostAddress splits "host:port::rest" or "[v6]:port::rest".
func cutHostAddress(s string) (addr, rest string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", fmt.Errorf("unterminated IPv6 address")
		}
		sep := strings.Index(s[end:], "::")
		if sep < 0 {
			return "", "", fmt.Errorf("no stat after the host address")
		}
		return s[:end+sep], s[end+sep+2:], nil
	}
	addr, rest, ok := strings.Cut(s, "::")
	if !ok {
		return "", "", fmt.Errorf("no stat after the host address")
	}
	return addr, rest, nil
}

func setThreshold(cb *CircuitBreaker, key, value string) {
	v64, err := strconv.ParseUint(strings.TrimSpace(value), 10, 32)
	if err != nil {
		return
	}
	v := uint32(v64)
	switch key {
	case "max_connections":
		cb.MaxConnections = &v
	case "max_pending_requests":
		cb.MaxPendingRequests = &v
	case "max_requests":
		cb.MaxRequests = &v
	case "max_retries":
		cb.MaxRetries = &v
	}
}

func setHostField(h *UpstreamHost, stat, value string) {
	switch stat {
	case "health_flags":
		h.HealthFlags = parseTextHealthFlags(value)
	case "weight":
		if w, err := strconv.ParseUint(value, 10, 32); err == nil {
			h.Weight = uint32(w)
		}
	case "zone":
		h.Zone = value
	case "success_rate":
		if f, err := strconv.ParseFloat(value, 64); err == nil && f >= 0 {
			h.SuccessRate = f
		}
	case "hostname", "region", "sub_zone", "canary", "priority", "local_origin_success_rate":
		// Not used by the diagnosis.
	default:
		if v, err := strconv.ParseUint(value, 10, 64); err == nil {
			if h.Stats == nil {
				h.Stats = map[string]uint64{}
			}
			h.Stats[stat] = v
		}
	}
}

// parseTextHealthFlags reads "healthy" or "/failed_active_hc/failed_outlier_check".
func parseTextHealthFlags(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" || s == "healthy" {
		return nil
	}
	var flags []string
	for _, f := range strings.Split(s, "/") {
		if f = strings.TrimSpace(f); f != "" && f != "healthy" {
			flags = append(flags, f)
		}
	}
	return flags
}

// clipForError shortens s for an error message.
func clipForError(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
