// Package benchdump grows a real sidecar's config dump into the dump of a large mesh, for the
// config dump benchmark (envoyadmin) and the whole-process benchmark (hack/benchprocess).
package benchdump

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Capture is the real dump, under ../shared/captures, that the benchmarks grow.
const Capture = "config_dump/istio-1.21-sidecar-full-with-eds-sds.json"

// Grow copies the dump's first dynamic cluster n times under new service names, with one
// copy of its first dynamic listener for every 250 clusters and one route config for every 10,
// as BenchmarkParseConfigDump does, and indents the result as Envoy prints it.
func Grow(src []byte, n int) ([]byte, error) {
	var top struct {
		Configs []map[string]json.RawMessage `json:"configs"`
	}
	if err := json.Unmarshal(src, &top); err != nil {
		return nil, err
	}
	const host = "httpbin.default.svc.cluster.local"
	grown := 0
	for _, sec := range top.Configs {
		for key, count := range map[string]int{"dynamic_active_clusters": n, "dynamic_listeners": n / 250, "static_route_configs": n / 10} {
			list, ok := sec[key]
			if !ok {
				continue
			}
			var items []json.RawMessage
			if err := json.Unmarshal(list, &items); err != nil || len(items) == 0 {
				return nil, fmt.Errorf("%s has no entry to copy", key)
			}
			copies := make([]json.RawMessage, count)
			for i := range copies {
				name := fmt.Sprintf("svc-%05d.ns-%03d.svc.cluster.local", i, i%300)
				c := bytes.ReplaceAll(items[0], []byte(host), []byte(name))
				if key == "dynamic_listeners" {
					c = bytes.ReplaceAll(c, []byte(`"main_internal"`), fmt.Appendf(nil, `"main_internal_%d"`, i))
				}
				copies[i] = c
			}
			raw, err := marshal(copies)
			if err != nil {
				return nil, err
			}
			sec[key] = raw
			grown++
		}
	}
	if grown != 3 {
		return nil, fmt.Errorf("found %d of the 3 lists to grow (clusters, listeners, routes)", grown)
	}
	flat, err := marshal(top)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, flat, "", "  "); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// marshal is json.Marshal without HTML escaping, so copied regexes keep their bytes.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return b.Bytes(), err
}
