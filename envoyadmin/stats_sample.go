package envoyadmin

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNoStats is returned (wrapped) by the stats parsers when the input has content but not a
// single stat could be read from it: it is not Envoy stats output at all.
var ErrNoStats = errors.New("no Envoy stats found")

// maxSkipWarnings bounds how many skipped lines a sample quotes in Warnings; Skipped counts all.
const maxSkipWarnings = 5

// StatsOption adjusts how the stats parsers read a sample.
type StatsOption func(*statsOptions)

type statsOptions struct {
	// clusterNames maps a cluster's name as it appears in stat names (':' written as '_', as
	// Envoy does) to the name the caller knows it by.
	clusterNames map[string]string
	// families, when set, are the only Prometheus metric families parsed.
	families map[string]bool
}

// WithPrometheusFamilies parses only these metric families of a /stats/prometheus sample
// ("envoy_cluster_upstream_rq_total", "istio_requests_total"): their lines are picked out before
// the Prometheus parser reads the text, so a caller that needs a few metrics of a big sample
// does not pay for the rest. The other parsers ignore it.
func WithPrometheusFamilies(names ...string) StatsOption {
	return func(o *statsOptions) {
		if o.families == nil {
			o.families = make(map[string]bool, len(names))
		}
		for _, n := range names {
			o.families[n] = true
		}
	}
}

// WithClusterNames gives the parser the proxy's cluster names, from /config_dump or /clusters.
// The parser then prefers them when a stat name can be split more than one way (a host such as
// "api.internal" looks like the "internal." stat scope), and keys Clusters by these names even
// where Envoy's stat names replaced ':' with '_'. Without it the parser learns the names from
// the sample itself, which is enough for every capture we have seen.
func WithClusterNames(names ...string) StatsOption {
	return func(o *statsOptions) {
		if o.clusterNames == nil {
			o.clusterNames = make(map[string]string, len(names))
		}
		for _, n := range names {
			o.clusterNames[strings.ReplaceAll(n, ":", "_")] = n
		}
	}
}

// IsGauge reports whether the stat (a canonical name or a cluster stat suffix) is a gauge in this
// sample: by its Prometheus TYPE when the sample recorded one, otherwise by the package's IsGauge.
func (s *StatsSample) IsGauge(name string) bool {
	if s != nil {
		if g, ok := s.Gauges[name]; ok {
			return g
		}
	}
	return IsGauge(name)
}

// statKind says what a parsed stat value holds.
type statKind uint8

const (
	statNumber statKind = iota
	statText
	statHistogram
)

// statValue is one parsed stat value, before the builder decides where it goes.
type statValue struct {
	kind statKind
	num  float64
	text string
	hist *Histogram
}

// pendingStat is a cluster stat whose name could be split more than one way (or none); it is
// placed once the whole sample has shown which cluster names exist.
type pendingStat struct {
	rest string // the stat name without "cluster."
	v    statValue
}

// sampleBuilder collects stats into a StatsSample, splitting cluster stats from the others. The
// text and JSON parsers add dotted Envoy names through add; the Prometheus parser, whose cluster
// is a label, uses cluster directly.
type sampleBuilder struct {
	s       *StatsSample
	opts    statsOptions
	pending []pendingStat
	// canon caches canonical suffixes by their dotted form, so the thousand clusters of a large
	// proxy share one string per suffix and the input buffer is not kept alive by map keys.
	canon  map[string]string
	parsed int
	// last and lastName cache the cluster of the previous stat; valuesHint sizes new clusters'
	// Values maps.
	last       *ClusterStats
	lastName   string
	valuesHint int
}

func newSampleBuilder(format StatsFormat, opts []StatsOption) *sampleBuilder {
	b := &sampleBuilder{
		s: &StatsSample{
			Format:     format,
			Stats:      map[string]float64{},
			Strings:    map[string]string{},
			Histograms: map[string]*Histogram{},
			Clusters:   map[string]*ClusterStats{},
		},
		canon: map[string]string{},
	}
	for _, o := range opts {
		o(&b.opts)
	}
	return b
}

// skip records a part of the input that did not parse: a line, or an entry of a JSON array.
func (b *sampleBuilder) skip(unit string, n int, text string) {
	b.s.Skipped++
	if b.s.Skipped <= maxSkipWarnings {
		if len(text) > 120 {
			text = text[:120] + "..."
		}
		b.s.Warnings = append(b.s.Warnings, fmt.Sprintf("%s %d is not a stat, skipped: %q", unit, n, text))
	}
}

// add places one stat by its dotted Envoy name.
func (b *sampleBuilder) add(name string, v statValue) {
	b.parsed++
	rest, ok := strings.CutPrefix(name, clusterStatPrefix)
	if !ok {
		b.putGlobal(ownedCanonical(name), v)
		return
	}
	cluster, suffix, n := splitClusterStat(rest)
	if n == 1 {
		b.putCluster(cluster, suffix, v)
		return
	}
	if n > 1 && len(b.opts.clusterNames) > 0 {
		if c, s, ok := b.knownSplit(rest, func(c string) bool { _, ok := b.opts.clusterNames[c]; return ok }); ok {
			b.putCluster(c, s, v)
			return
		}
	}
	b.pending = append(b.pending, pendingStat{rest: strings.Clone(rest), v: v})
}

// knownSplit returns the first split of rest whose cluster name known accepts.
func (b *sampleBuilder) knownSplit(rest string, known func(string) bool) (cluster, suffix string, ok bool) {
	forEachClusterSplit(rest, func(c, s string) bool {
		if known(c) {
			cluster, suffix, ok = c, s, true
		}
		return !ok
	})
	return cluster, suffix, ok
}

// finish places the stats left pending and returns the sample.
func (b *sampleBuilder) finish() *StatsSample {
	known := func(c string) bool {
		if _, ok := b.s.Clusters[c]; ok {
			return true
		}
		_, ok := b.opts.clusterNames[c]
		return ok
	}
	for _, p := range b.pending {
		if c, s, ok := b.knownSplit(p.rest, known); ok {
			b.putCluster(c, s, p.v)
			continue
		}
		if c, s, n := splitClusterStat(p.rest); n > 0 {
			b.putCluster(c, s, p.v) // ambiguous and no name seen: the shortest cluster name
			continue
		}
		// No documented stat shape: a stat of a known cluster (longest name wins), else a
		// plain name.dotless-stat pair, else keep it whole rather than invent a cluster.
		if c := b.longestKnownPrefix(p.rest); c != "" {
			b.putCluster(c, p.rest[len(c)+1:], p.v)
			continue
		}
		from := strings.LastIndexByte(p.rest, '|') + 1
		if dot := strings.IndexByte(p.rest[from:], '.') + from; dot >= from && dot > 0 &&
			dot+1 < len(p.rest) && strings.IndexByte(p.rest[dot+1:], '.') < 0 {
			b.putCluster(p.rest[:dot], p.rest[dot+1:], p.v)
			continue
		}
		b.putGlobal(canonicalStatName(clusterStatPrefix+p.rest), p.v)
	}
	b.pending = nil
	b.s.checkNumbers()
	return b.s
}

// longestKnownPrefix returns the longest cluster name already in the sample that rest starts
// with, followed by a '.', or "".
func (b *sampleBuilder) longestKnownPrefix(rest string) string {
	for i := len(rest) - 1; i > 0; i-- {
		if rest[i] == '.' {
			if _, ok := b.s.Clusters[rest[:i]]; ok {
				return rest[:i]
			}
		}
	}
	return ""
}

// ownedCanonical returns the canonical name as a string of its own: a name without dots would
// otherwise be a slice of the whole input, keeping it alive.
func ownedCanonical(name string) string {
	if strings.IndexByte(name, '.') < 0 {
		return strings.Clone(name)
	}
	return canonicalStatName(name)
}

func (b *sampleBuilder) putGlobal(name string, v statValue) {
	switch v.kind {
	case statNumber:
		b.s.Stats[name] = v.num
	case statText:
		b.s.Strings[name] = v.text
	case statHistogram:
		b.s.Histograms[name] = v.hist
	}
}

func (b *sampleBuilder) putCluster(cluster, suffix string, v statValue) {
	if v.kind == statText {
		// Clusters have no text stats in Envoy's docs; keep any under its full name.
		b.putGlobal(canonicalStatName(clusterStatPrefix+cluster+"."+suffix), v)
		return
	}
	cs := b.cluster(cluster)
	key, ok := b.canon[suffix]
	if !ok {
		key = strings.Clone(canonicalStatName(suffix))
		b.canon[strings.Clone(suffix)] = key
	}
	if v.kind == statHistogram {
		cs.Histograms[key] = v.hist
		return
	}
	cs.Values[key] = v.num
}

// cluster returns the stats of a cluster, by the name in the stat, creating them on first use.
// Envoy lists a cluster's stats together, so the last one looked up is kept at hand.
func (b *sampleBuilder) cluster(statName string) *ClusterStats {
	if b.last != nil && statName == b.lastName {
		return b.last
	}
	cs := b.lookupCluster(statName)
	b.last, b.lastName = cs, cs.Name.Raw
	if statName != cs.Name.Raw {
		b.lastName = strings.Clone(statName)
	}
	return cs
}

func (b *sampleBuilder) lookupCluster(statName string) *ClusterStats {
	name := statName
	if known, ok := b.opts.clusterNames[statName]; ok {
		name = known
	}
	if cs, ok := b.s.Clusters[name]; ok {
		return cs
	}
	name = strings.Clone(name)
	if b.last != nil && len(b.last.Values) > b.valuesHint {
		b.valuesHint = min(len(b.last.Values), 256) // clusters of one proxy have similar stats
	}
	cs := &ClusterStats{
		Name:       ParseClusterName(name),
		Values:     make(map[string]float64, b.valuesHint),
		Histograms: map[string]*Histogram{},
	}
	b.s.Clusters[name] = cs
	return cs
}

// Empty reports whether the sample holds no stats at all, as when a file of another format
// parsed to nothing.
func (s *StatsSample) Empty() bool {
	return s == nil || len(s.Stats) == 0 && len(s.Strings) == 0 && len(s.Histograms) == 0 && len(s.Clusters) == 0 && len(s.Istio) == 0
}
