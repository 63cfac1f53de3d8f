// Package diagnose is the diagnosis engine: it reads an evidence snapshot of one proxy, runs
// pure rules over it and ranks what they find, so that the first finding is the most likely
// reason the pod is slow or failing.
package diagnose

import "fmt"

// Severity says how bad a finding is.
type Severity string

// Severities, from least to most severe.
const (
	SeverityInfo    Severity = "info"
	SeverityWarning Severity = "warning"
	SeverityError   Severity = "error"
)

// Rank orders severities: info 1, warning 2, error 3, anything else 0.
func (s Severity) Rank() int {
	switch s {
	case SeverityInfo:
		return 1
	case SeverityWarning:
		return 2
	case SeverityError:
		return 3
	}
	return 0
}

// ParseSeverity reads a severity name as given on the command line.
func ParseSeverity(s string) (Severity, error) {
	switch Severity(s) {
	case SeverityInfo, SeverityWarning, SeverityError:
		return Severity(s), nil
	}
	return "", fmt.Errorf("unknown severity %q: use info, warning or error", s)
}

// Category is the kind of problem a finding describes. The set is closed: scripts and JSON
// consumers switch on it.
type Category string

// The categories.
const (
	CategoryTimeout           Category = "timeout"
	CategoryConnectFailure    Category = "connect-failure"
	CategoryCircuitBreaker    Category = "circuit-breaker"
	CategoryUpstreamReset     Category = "upstream-reset"
	CategoryNoHealthyUpstream Category = "no-healthy-upstream"
	CategoryRetriesExhausted  Category = "retries-exhausted"
	CategoryNoRoute           Category = "no-route"
	CategoryMTLS              Category = "mtls"
	CategoryCertExpiry        Category = "cert-expiry"
	CategoryConfigRejected    Category = "config-rejected"
	CategoryLatency           Category = "latency"
	CategoryStatsDisabled     Category = "stats-disabled"
	CategorySidecarNotReady   Category = "sidecar-not-ready"
	CategoryCPUThrottling     Category = "cpu-throttling"
	CategoryNodeCPUSteal      Category = "node-cpu-steal"
	CategoryNodeIO            Category = "node-io"
	CategoryNodeLimits        Category = "node-limits"
	CategoryAppError          Category = "app-error"
	CategoryAmbient           Category = "ambient" // the ambient data path: a pod's enrollment, HBONE between ztunnels
)

// categories lists every category, in the order of the documentation.
var categories = []Category{
	CategoryTimeout, CategoryConnectFailure, CategoryCircuitBreaker, CategoryUpstreamReset,
	CategoryNoHealthyUpstream, CategoryRetriesExhausted, CategoryNoRoute, CategoryMTLS,
	CategoryCertExpiry, CategoryConfigRejected, CategoryLatency, CategoryStatsDisabled,
	CategorySidecarNotReady, CategoryCPUThrottling, CategoryNodeCPUSteal, CategoryNodeIO,
	CategoryNodeLimits, CategoryAppError, CategoryAmbient,
}

// SubjectKind says what a finding is about.
type SubjectKind string

// Subject kinds.
const (
	SubjectCluster     SubjectKind = "cluster"     // an upstream cluster
	SubjectRoute       SubjectKind = "route"       // a route of a route configuration
	SubjectListener    SubjectKind = "listener"    // a listener
	SubjectPod         SubjectKind = "pod"         // the pod or its sidecar
	SubjectProxy       SubjectKind = "proxy"       // the Envoy process as a whole
	SubjectCertificate SubjectKind = "certificate" // a certificate the proxy holds
)

// Subject is the thing a finding is about.
type Subject struct {
	Kind SubjectKind `json:"kind"`
	Name string      `json:"name"`
}

func (s Subject) String() string { return string(s.Kind) + " " + s.Name }

// Evidence is one figure that backs a finding, with its unit and where it came from, so a
// user can check it ("21 req", from "stats.txt cluster.X.upstream_rq_pending_overflow").
type Evidence struct {
	Label string `json:"label"`
	// Value is the number; Text replaces it for values that are not numbers (a TLS mode).
	Value float64 `json:"value"`
	Text  string  `json:"text,omitempty"`
	Unit  string  `json:"unit,omitempty"`
	// Source names the file and the stat or config field the figure came from.
	Source string `json:"source"`
}

// Units used in evidence.
const (
	UnitPerSecond = "/s"
	UnitCount     = "count"
	UnitMillis    = "ms"
	UnitPercent   = "%"
	UnitDays      = "days"
)

// Fix is what the user can do about a finding.
type Fix struct {
	// Summary says the fix in one sentence.
	Summary string `json:"summary"`
	// Command is a shell command to run, when there is one.
	Command string `json:"command,omitempty"`
	// YAML is a manifest to apply, when there is one.
	YAML string `json:"yaml,omitempty"`
}

// Finding is one diagnosed problem. It is data: the text, JSON and YAML outputs all render
// this struct.
type Finding struct {
	Code     string   `json:"code"`
	Severity Severity `json:"severity"`
	Category Category `json:"category"`
	Subject  Subject  `json:"subject"`
	// Title says what is wrong in one line.
	Title    string     `json:"title"`
	Evidence []Evidence `json:"evidence"`
	// Explanation says why this happens, in a few sentences.
	Explanation string `json:"explanation"`
	Fix         Fix    `json:"fix"`
	// Doc is the anchor of the code's entry in the documentation.
	Doc string `json:"doc"`
	// Impact is the affected request rate per second over the window (or over the proxy's
	// uptime when only one sample was taken): requests, never requests weighted by latency.
	// Rates from the access log alone are over the span of its timestamped lines; when that span
	// is unknown, under a second or over a day (lines of several captures), no rate can be told
	// and Impact is 0. It is 0 too for findings about configuration alone and for counters with
	// no time base. It orders findings of equal severity; at equal impact, code and subject do.
	Impact float64 `json:"impact"`
	// Rule names the rule that reported the finding.
	Rule string `json:"rule"`
}
