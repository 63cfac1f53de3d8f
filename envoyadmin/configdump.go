package envoyadmin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/internal/lazyregexp"
)

// ParseConfigDump summarises an Envoy /config_dump (optionally with ?include_eds) into the
// settings the diagnosis reads: clusters, routes, listeners, endpoints, SDS certificates, the
// bootstrap's node and stats matcher, and the resources Envoy rejected.
//
// It accepts dumps from Envoy 1.13 on, whatever the control plane: v3 dumps, dumps whose
// resources are still v2 types (envoy.api.v2.Cluster, v2 tls_context and Struct filter configs),
// unknown extension types, and "[redacted]" secrets. A section or resource that cannot be decoded
// is skipped and named in Warnings, and the rest is still summarised (a cluster whose TLS
// context alone does not decode is kept with an empty TLSMode). The error is for input that is
// not a config dump at all: not JSON, or JSON without a "configs" array.
//
// The dump's wrappers are read in one pass, and each resource is decoded by a pool of
// GOMAXPROCS workers while that pass goes on.
func ParseConfigDump(data []byte) (*ConfigSummary, error) {
	p := &dumpParse{}
	p.startWorkers()
	err := p.collect(data)
	p.stopWorkers()
	if err != nil {
		return nil, err
	}
	return p.summary(), nil
}

// dumpKind is the kind of resource a job decodes.
type dumpKind uint8

const (
	dumpKindCluster dumpKind = iota
	dumpKindListener
	dumpKindRoute
	dumpKindEndpoints
	dumpKindBootstrap
)

var dumpKindNames = [...]string{"cluster", "listener", "route config", "endpoints", "bootstrap"}

// dumpJob is one resource to decode, and what decoding it gave.
type dumpJob struct {
	kind    dumpKind
	raw     []byte
	index   int    // position in its section, for messages
	source  string // "static" or "dynamic"
	version string
	warming bool

	cluster   *ClusterConfig
	listener  *dumpListener
	routes    []RouteConfig // a route config's routes, or a listener's inline ones
	endpoints *ClusterEndpoints
	bootstrap *dumpBootstrap
	warns     []string
}

// where names the job's resource in warnings.
func (j *dumpJob) where() string {
	kind := dumpKindNames[j.kind]
	name := dumpStringField(j.raw, "name")
	if j.kind == dumpKindEndpoints {
		name = dumpStringField(j.raw, "cluster_name")
	}
	if name != "" {
		return fmt.Sprintf("%s %q", kind, name)
	}
	return fmt.Sprintf("%s #%d (%s)", kind, j.index, j.source)
}

// dumpParse is a config dump split into jobs, before and after decoding.
type dumpParse struct {
	// batches hold the jobs in dump order; each is handed to the workers when full.
	batches   [][]dumpJob
	cur       []dumpJob
	work      chan []dumpJob
	workers   sync.WaitGroup
	secrets   [][]byte
	rejected  []RejectedResource
	warnings  []string
	sawRoutes bool // the dump has a RoutesConfigDump, which already lists inline route configs
}

// collect checks that data is a config dump and splits it into one job per resource. It reads
// only the dump's wrappers, in one pass; the workers decode the resources.
func (p *dumpParse) collect(data []byte) error {
	const want = `expected the JSON object of Envoy's GET /config_dump, with a "configs" array`
	i := dumpSkipWS(data, 0)
	if i >= len(data) {
		return errors.New("config dump is empty: " + want)
	}
	if data[i] != '{' {
		return fmt.Errorf("not a config dump: %s, got %s", want, dumpDescribe(data[i:]))
	}
	sawConfigs := false
	top := dumpObject(data)
	for top.Next() {
		if !dumpKeyIs(top.Key(), "configs") {
			continue
		}
		if top.b[top.vs] != '[' {
			return fmt.Errorf("not a config dump: %s, got \"configs\" that is not an array", want)
		}
		sawConfigs = true
		sections := top.Array()
		for n := 0; sections.Next(); n++ {
			p.section(n, &sections)
		}
		if err := sections.Err(); err != nil {
			return fmt.Errorf("config dump is not valid JSON (truncated?): %w", err)
		}
		top.After(&sections)
	}
	if err := top.Err(); err != nil {
		return fmt.Errorf("config dump is not valid JSON (truncated?): %w", err)
	}
	if j := dumpSkipWS(data, top.end); j < len(data) {
		return fmt.Errorf("config dump is not valid JSON: %v", dumpSyntax(j, "data after the end of the object"))
	}
	if !sawConfigs {
		return fmt.Errorf("not a config dump: %s, got an object without one", want)
	}
	return nil
}

// dumpDescribe names what a non-object JSON document starts with, for the error message.
func dumpDescribe(b []byte) string {
	switch c := b[0]; {
	case c == '[':
		return "a JSON array"
	case c == '"':
		return "a JSON string"
	case c == '-' || c >= '0' && c <= '9' || c == 't' || c == 'f' || c == 'n':
		return "a JSON scalar"
	default:
		return fmt.Sprintf("text that is not JSON (starting %q)", string(b[:min(len(b), 20)]))
	}
}

// dumpList describes one resource list of a config dump section.
type dumpList struct {
	kind   dumpKind
	field  string // the entry's member holding the resource
	source string // static, dynamic, or warming
}

// dumpLists are the resource lists of the sections, by member name; the names are unique across
// section types, so lists are found without waiting for the section's @type. Read-only.
var dumpLists = map[string]dumpList{
	"static_clusters":           {dumpKindCluster, "cluster", "static"},
	"dynamic_active_clusters":   {dumpKindCluster, "cluster", "dynamic"},
	"dynamic_warming_clusters":  {dumpKindCluster, "cluster", "warming"},
	"static_listeners":          {dumpKindListener, "listener", "static"},
	"dynamic_listeners":         {dumpKindListener, "listener", "dynamic"},
	"dynamic_active_listeners":  {dumpKindListener, "listener", "dynamic"}, // before Envoy 1.13
	"dynamic_warming_listeners": {dumpKindListener, "listener", "warming"}, // before Envoy 1.13
	"static_route_configs":      {dumpKindRoute, "route_config", "static"},
	"dynamic_route_configs":     {dumpKindRoute, "route_config", "dynamic"},
	"static_endpoint_configs":   {dumpKindEndpoints, "endpoint_config", "static"},
	"dynamic_endpoint_configs":  {dumpKindEndpoints, "endpoint_config", "dynamic"},
}

// section splits the current element of "configs" into jobs.
func (p *dumpParse) section(n int, sections *dumpIter) {
	var typ string
	m := sections.Object()
	for m.Next() {
		switch k := m.Key(); {
		case string(k) == "@type":
			typ = dumpTypeName(dumpString(m.Val()))
		case dumpKeyIs(k, "bootstrap"):
			if b := m.Val(); !dumpIsNull(b) {
				p.add(dumpJob{kind: dumpKindBootstrap, raw: b, source: "static"})
			}
		default:
			list, ok := dumpLists[string(k)]
			if !ok && dumpHasUpper(k) {
				list, ok = dumpLists[dumpSnake(k)]
			}
			if !ok {
				continue
			}
			entries := m.Array()
			for i := 0; entries.Next(); i++ {
				p.entry(list, i, &entries)
			}
			m.After(&entries)
		}
	}
	if m.Err() != nil {
		return // the caller reports the syntax error
	}
	sections.After(&m)
	switch strings.TrimPrefix(typ, "envoy.admin.v3.") {
	case "BootstrapConfigDump", "ClustersConfigDump", "ListenersConfigDump", "EndpointsConfigDump":
	case "RoutesConfigDump":
		p.sawRoutes = true
	case "SecretsConfigDump":
		sec := sections.Val()
		p.secrets = append(p.secrets, sec)
		for _, key := range [...]string{"dynamic_active_secrets", "dynamic_warming_secrets"} {
			entries := dumpArray(dumpField(sec, key))
			for entries.Next() {
				e := entries.Val()
				p.rejectedEntry("secret", dumpStringField(e, "name"), dumpField(e, "error_state"), nil)
			}
		}
	case "ScopedRoutesConfigDump", "EcdsConfigDump":
		// Nothing the diagnosis reads.
	case "":
		p.warnings = append(p.warnings, fmt.Sprintf("configs[%d] has no @type: skipped", n))
	default:
		p.warnings = append(p.warnings, fmt.Sprintf("configs[%d] is a %s, which this tool does not read: skipped", n, typ))
	}
}

// entry adds the job for the current entry of a resource list. Entries are {version_info,
// <field>, last_updated, error_state}; dynamic listeners nest that under active_state or
// warming_state.
func (p *dumpParse) entry(list dumpList, n int, entries *dumpIter) {
	j := dumpJob{kind: list.kind, index: n, source: list.source}
	var name string
	var errState, active, warming, draining []byte
	var activeVersion, warmingVersion string
	m := entries.Object()
	for m.Next() {
		switch k := m.Key(); {
		case dumpKeyIs(k, list.field):
			j.raw = m.Val()
		case dumpKeyIs(k, "version_info"):
			j.version = dumpString(m.Val())
		case dumpKeyIs(k, "active_state"):
			active, activeVersion = dumpState(&m, list.field)
		case dumpKeyIs(k, "warming_state"):
			warming, warmingVersion = dumpState(&m, list.field)
		case dumpKeyIs(k, "draining_state"):
			draining = m.Val()
		case dumpKeyIs(k, "error_state"):
			errState = m.Val()
		case dumpKeyIs(k, "name"):
			name = dumpString(m.Val())
		}
	}
	entries.After(&m)
	// A listener being updated is served by its active state; one that never became active
	// only by its warming state.
	switch {
	case j.raw != nil:
	case !dumpIsNull(active):
		j.raw, j.version = active, activeVersion
	case !dumpIsNull(warming):
		j.raw, j.version, j.warming = warming, warmingVersion, true
	}
	if list.source == "warming" {
		j.source, j.warming = "dynamic", true
	}
	p.rejectedEntry(dumpKindNames[list.kind], name, errState, j.raw)
	if dumpIsNull(j.raw) {
		// A listener only draining is on its way out; one only in error never got in.
		if dumpIsNull(errState) && dumpIsNull(draining) {
			p.warnings = append(p.warnings, fmt.Sprintf("%s #%d (%s) has no %s: skipped", dumpKindNames[list.kind], n, list.source, list.field))
		}
		return
	}
	p.add(j)
}

// dumpState reads a dynamic listener's active_state or warming_state: the listener and its
// version.
func dumpState(it *dumpIter, field string) (raw []byte, version string) {
	m := it.Object()
	for m.Next() {
		switch {
		case dumpKeyIs(m.Key(), field):
			raw = m.Val()
		case dumpKeyIs(m.Key(), "version_info"):
			version = dumpString(m.Val())
		}
	}
	it.After(&m)
	return raw, version
}

// rejectedEntry records an entry's error_state, if it has one: Envoy rejected the last update
// of that resource. name is the entry's, resource the one still in use, if any.
func (p *dumpParse) rejectedEntry(kind, name string, errState, resource []byte) {
	if dumpIsNull(errState) {
		return
	}
	r := RejectedResource{Kind: kind, Name: name}
	if r.Name == "" {
		r.Name = dumpStringField(dumpField(errState, "failed_configuration"), "name")
	}
	if r.Name == "" && resource != nil {
		r.Name = dumpStringField(resource, "name")
	}
	r.Details = dumpStringField(errState, "details")
	if t, err := time.Parse(time.RFC3339Nano, dumpStringField(errState, "last_update_attempt")); err == nil {
		r.When = t
	}
	p.rejected = append(p.rejected, r)
}

// summary merges the decoded jobs, in dump order.
func (p *dumpParse) summary() *ConfigSummary {
	s := &ConfigSummary{Rejected: p.rejected}
	var boot *dumpBootstrap
	active := map[string]bool{}
	var clusters int
	for j := range p.jobs() {
		if j.kind == dumpKindCluster && j.cluster != nil && !j.warming {
			active[j.cluster.Name.Raw] = true
			clusters++
		}
		if j.kind == dumpKindBootstrap && j.bootstrap != nil && boot == nil {
			boot = j.bootstrap
		}
	}
	if boot != nil {
		s.Proxy = boot.proxy
		s.StatsInclusions = boot.statsInclusions
		s.StatsMatcherSet = boot.statsMatcherSet
	}
	if clusters > 0 {
		s.Clusters = make([]ClusterConfig, 0, clusters)
	}
	routeNames := map[string]bool{}
	var inline []RouteConfig
	for j := range p.jobs() {
		s.Warnings = append(s.Warnings, j.warns...)
		switch {
		case j.cluster != nil:
			// A warming cluster is listed too only when no active one has its name.
			if !j.warming || !active[j.cluster.Name.Raw] {
				s.Clusters = append(s.Clusters, *j.cluster)
			}
			if j.warming {
				s.Warming = append(s.Warming, "cluster "+j.cluster.Name.Raw)
			}
		case j.listener != nil:
			l := j.listener
			if j.warming {
				s.Warming = append(s.Warming, "listener "+l.cfg.Name)
			}
			l.cfg.Inbound = dumpInbound(l, boot)
			if l.cfg.Inbound {
				l.cfg.MTLSMode = dumpMTLSMode(l)
			}
			s.Listeners = append(s.Listeners, l.cfg)
			inline = append(inline, j.routes...)
		case j.kind == dumpKindRoute:
			routeNames[dumpStringField(j.raw, "name")] = true
			s.Routes = append(s.Routes, j.routes...)
		case j.endpoints != nil:
			s.Endpoints = append(s.Endpoints, *j.endpoints)
		}
	}
	// Envoy lists a listener's inline route_config among the RoutesConfigDump's static route
	// configs, so inline routes are only added when the dump has no routes section or lacks
	// that route config.
	for _, r := range inline {
		if !p.sawRoutes || !routeNames[r.RouteConfigName] {
			s.Routes = append(s.Routes, r)
		}
	}
	for _, sec := range p.secrets {
		certs, err := CertsFromSecretsDump(sec)
		s.Secrets = append(s.Secrets, certs...)
		if err != nil {
			s.Warnings = append(s.Warnings, fmt.Sprintf("secrets: %v", err))
		}
	}
	s.Warnings = append(p.warnings, s.Warnings...)
	return s
}

// warmingExcerpt finds the clusters of a "dynamic_warming_clusters" section in text that is
// not a whole dump (an excerpt that starts inside it).
var warmingExcerpt = lazyregexp.New(`"cluster":\s*\{\s*"@type":\s*"[^"]*Cluster",\s*"name":\s*"([^"]+)"`)

// excerptSections wraps what users cut out of a config dump (jq '.configs[1]...', istioctl
// proxy-config -o json) back into one: a section's list, by the key its entries carry.
var excerptSections = []struct{ entryKey, dumpType, listKey string }{
	{`"cluster"`, "ClustersConfigDump", "dynamic_active_clusters"},
	{`"active_state"`, "ListenersConfigDump", "dynamic_listeners"},
	{`"route_config"`, "RoutesConfigDump", "dynamic_route_configs"},
}

// ConfigDumpExcerpt reads what can be read of a config dump excerpt that does not parse as a
// dump: a section's list on its own (a JSON array of clusters, listeners or route configs), or
// else the clusters it shows warming. ok is false when it shows nothing known.
func ConfigDumpExcerpt(data []byte) (*ConfigSummary, bool) {
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '[' && json.Valid(t) {
		for _, sec := range excerptSections {
			if !bytes.Contains(t, []byte(sec.entryKey)) {
				continue
			}
			wrapped := []byte(`{"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.` + sec.dumpType + `", "` + sec.listKey + `": ` + string(t) + `}]}`)
			if s, err := ParseConfigDump(wrapped); err == nil {
				return s, len(s.Clusters)+len(s.Listeners)+len(s.Routes) > 0
			}
		}
	}
	i := bytes.Index(data, []byte(`"dynamic_warming_clusters"`))
	if i < 0 {
		return nil, false
	}
	s := &ConfigSummary{}
	for _, m := range warmingExcerpt.FindAllSubmatch(data[i:], -1) {
		s.Warming = append(s.Warming, "cluster "+string(m[1]))
	}
	return s, len(s.Warming) > 0
}
