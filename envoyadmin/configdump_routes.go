package envoyadmin

import (
	"fmt"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// Route configurations are walked at the JSON level down to each route, and each route is
// decoded on its own: a route's typed_per_filter_config, metadata and header rewrites (most of
// its bytes) are pruned, and v2's regex path match, gone from v3, can still be read.

var dumpRetrySpec = dumpSpec{
	"retry_on":               nil,
	"num_retries":            nil,
	"per_try_timeout":        nil,
	"retriable_status_codes": nil,
}

var dumpVirtualHostSpec = dumpSpec{"name": nil, "domains": nil, "retry_policy": dumpRetrySpec}

// dumpVirtualHostRaw are the members of a VirtualHost read at the JSON level: its routes, each
// decoded on its own.
var dumpVirtualHostRaw = [...]string{"routes"}

var dumpRouteSpec = dumpSpec{
	"name": nil,
	"match": {
		"prefix":                nil,
		"path":                  nil,
		"safe_regex":            {"regex": nil},
		"connect_matcher":       {},
		"path_separated_prefix": nil,
		"path_match_policy":     {"name": nil},
		"headers":               {"name": nil},
	},
	"route": {
		"cluster":           nil,
		"cluster_header":    nil,
		"weighted_clusters": {"clusters": {"name": nil, "weight": nil}},
		"timeout":           nil,
		"retry_policy":      dumpRetrySpec,
	},
	"direct_response": {"status": nil},
	"redirect":        {"response_code": nil},
}

// dumpRedirectCodes are the HTTP codes of RedirectAction's response_code enum.
var dumpRedirectCodes = map[routev3.RedirectAction_RedirectResponseCode]int{
	routev3.RedirectAction_MOVED_PERMANENTLY:  301,
	routev3.RedirectAction_FOUND:              302,
	routev3.RedirectAction_SEE_OTHER:          303,
	routev3.RedirectAction_TEMPORARY_REDIRECT: 307,
	routev3.RedirectAction_PERMANENT_REDIRECT: 308,
}

// routeConfig flattens one RouteConfiguration (RDS, or inline in a connection manager) into its
// routes. A virtual host or route that cannot be decoded is skipped with a warning, which names
// the route config when it is inline (an RDS job's warnings already do).
func (d *dumpDecoder) routeConfig(raw []byte, inline bool) ([]RouteConfig, error) {
	var name string
	var vhosts []byte
	it := dumpObject(raw)
	for it.Next() {
		switch {
		case dumpKeyIs(it.Key(), "name"):
			name = dumpString(it.Val())
		case dumpKeyIs(it.Key(), "virtual_hosts"):
			vhosts = it.Val()
		}
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	where := ""
	if inline {
		where = fmt.Sprintf("route config %q: ", name)
	}
	var out []RouteConfig
	vh := dumpArray(vhosts)
	for n := 0; vh.Next(); n++ {
		var v routev3.VirtualHost
		var got [1][]byte
		if err := d.decodeCapture(vh.Val(), dumpVirtualHostSpec, &v, dumpVirtualHostRaw[:], got[:]); err != nil {
			d.warnf("%svirtual host #%d: %v", where, n, err)
			continue
		}
		routes := dumpArray(got[0])
		for r := 0; routes.Next(); r++ {
			rc, err := d.route(routes.Val(), &v)
			if err != nil {
				d.warnf("%svirtual host %q: route #%d: %v", where, v.GetName(), r, err)
				continue
			}
			rc.RouteConfigName = name
			out = append(out, rc)
		}
	}
	return out, nil
}

// route converts one route of the virtual host vh.
func (d *dumpDecoder) route(raw []byte, vh *routev3.VirtualHost) (RouteConfig, error) {
	var r routev3.Route
	if err := d.decode(raw, dumpRouteSpec, &r); err != nil {
		return RouteConfig{}, err
	}
	out := RouteConfig{
		VirtualHost: vh.GetName(),
		Domains:     vh.GetDomains(),
		Name:        r.GetName(),
		Match:       dumpRouteMatch(r.GetMatch(), dumpField(raw, "match")),
	}
	// The route's retry policy replaces the virtual host's, which applies otherwise.
	retry := vh.GetRetryPolicy()
	switch {
	case r.GetRoute() != nil:
		a := r.GetRoute()
		switch {
		case a.GetCluster() != "":
			out.Clusters = []WeightedCluster{{Name: a.GetCluster(), Weight: 100}}
		case a.GetWeightedClusters() != nil:
			for _, c := range a.GetWeightedClusters().GetClusters() {
				out.Clusters = append(out.Clusters, WeightedCluster{Name: c.GetName(), Weight: c.GetWeight().GetValue()})
			}
		}
		if t := a.GetTimeout(); t != nil {
			out.Timeout = dumpDurationPtr(t.AsDuration())
		}
		if a.GetRetryPolicy() != nil {
			retry = a.GetRetryPolicy()
		}
	case r.GetDirectResponse() != nil:
		out.DirectResponse = int(r.GetDirectResponse().GetStatus())
	case r.GetRedirect() != nil:
		out.DirectResponse = dumpRedirectCodes[r.GetRedirect().GetResponseCode()]
	}
	out.Retry = dumpRetry(retry)
	return out, nil
}

// dumpRouteMatch renders a route match as "prefix /", "path /x", "regex ^/x.*" and so on,
// followed by the names of the headers it also matches. rawMatch is for v2's regex field.
func dumpRouteMatch(m *routev3.RouteMatch, rawMatch []byte) string {
	var s string
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		s = "prefix " + p.Prefix
	case *routev3.RouteMatch_Path:
		s = "path " + p.Path
	case *routev3.RouteMatch_SafeRegex:
		s = "regex " + p.SafeRegex.GetRegex()
	case *routev3.RouteMatch_PathSeparatedPrefix:
		s = "path_separated_prefix " + p.PathSeparatedPrefix
	case *routev3.RouteMatch_ConnectMatcher_:
		s = "connect"
	case *routev3.RouteMatch_PathMatchPolicy:
		s = "path_match_policy " + p.PathMatchPolicy.GetName()
	default:
		if re := dumpStringField(rawMatch, "regex"); re != "" {
			s = "regex " + re // v2
		}
	}
	if hs := m.GetHeaders(); len(hs) > 0 {
		names := make([]string, len(hs))
		for i, h := range hs {
			names[i] = h.GetName()
		}
		s += fmt.Sprintf(" (headers %s)", strings.Join(names, ","))
	}
	return s
}

// dumpRetry converts a retry policy. NumRetries is the effective count: Envoy retries once when
// num_retries is unset.
func dumpRetry(p *routev3.RetryPolicy) *RetryPolicy {
	if p == nil {
		return nil
	}
	n := uint32(1)
	if p.GetNumRetries() != nil {
		n = p.GetNumRetries().GetValue()
	}
	return &RetryPolicy{
		RetryOn:              p.GetRetryOn(),
		NumRetries:           n,
		PerTryTimeout:        p.GetPerTryTimeout().AsDuration(),
		RetriableStatusCodes: p.GetRetriableStatusCodes(),
	}
}

// dumpDurationPtr returns a pointer to a copy of d.
func dumpDurationPtr(d time.Duration) *time.Duration { return &d }
