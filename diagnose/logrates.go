package diagnose

import (
	"fmt"
	"sort"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// What access-log lines count for: evidence lines, the span they cover, rates over it.

// logEvidence is an evidence line counting access-log lines.
func (s *Snapshot) logEvidence(label string, n int) Evidence {
	return Evidence{Label: label, Value: float64(n), Unit: UnitCount, Source: fmt.Sprintf("access.log (%d lines)", len(s.AccessLog))}
}

// logSpan is the time between the first and the last timestamped access-log line.
func (s *Snapshot) logSpan() time.Duration {
	var first, last time.Time
	for _, e := range s.AccessLog {
		if e.Timestamp.IsZero() {
			continue
		}
		if first.IsZero() || e.Timestamp.Before(first) {
			first = e.Timestamp
		}
		if e.Timestamp.After(last) {
			last = e.Timestamp
		}
	}
	return last.Sub(first)
}

// Bounds of an access-log span that a rate can be taken over.
const (
	// minLogSpan: a rate over a burst under a second says nothing about the load.
	minLogSpan = time.Second
	// maxLogSpan: one capture's log covers minutes or hours. A longer span means lines of
	// several captures, restarts or years were pasted together, and lines per second of it
	// would be a meaningless near-zero figure.
	maxLogSpan = 24 * time.Hour
)

// logRate is n log lines per second of the log's span. When the span is unknown (no
// timestamps), under minLogSpan or over maxLogSpan, there is no rate: it returns 0, so a finding
// that rests on log lines alone has impact 0 and ranks by severity and code (see
// Finding.Impact).
func (s *Snapshot) logRate(n int) float64 {
	span := s.logSpan()
	if n == 0 || span < minLogSpan || span > maxLogSpan {
		return 0
	}
	return float64(n) / span.Seconds()
}

// LogCount counts the access-log entries that match and returns them with an evidence line
// naming the file, so rules that work from logs report like rules that work from stats.
func (s *Snapshot) LogCount(label string, match func(e *envoyadmin.AccessLogEntry) bool) (int, Evidence) {
	n := len(s.LogEntries(match))
	return n, Evidence{Label: label, Value: float64(n), Unit: UnitCount, Source: fmt.Sprintf("access.log (%d lines)", len(s.AccessLog))}
}

// logHosts lists the distinct upstream hosts of log lines, most frequent first.
func logHosts(entries []envoyadmin.AccessLogEntry) []string {
	n := map[string]int{}
	for _, e := range entries {
		if e.UpstreamHost != "" && e.UpstreamHost != "-" {
			n[e.UpstreamHost]++
		}
	}
	hosts := sortedKeys(n)
	sort.SliceStable(hosts, func(i, j int) bool { return n[hosts[i]] > n[hosts[j]] })
	return hosts
}
