package envoyadmin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

// benchDumpCapture is the real dump the benchmark's large dump is grown from.
const benchDumpCapture = "config_dump/istio-1.21-sidecar-full-with-eds-sds.json"

// makeBenchDump grows the Istio 1.21 capture into a dump of a large mesh: its dynamic cluster
// copied nClusters times under new service names, one copy of its inbound listener for every 250
// clusters and one route config for every 10, with the other sections as captured. The copies
// keep the capture's bytes and indentation, so the result reads like a real dump of that size.
func makeBenchDump(tb testing.TB, nClusters int) []byte {
	tb.Helper()
	src := captures.Read(tb, benchDumpCapture)
	const host = "httpbin.default.svc.cluster.local"
	copies := func(tmpl []byte, n int, rename func(i int) [][2]string) []byte {
		var out bytes.Buffer
		out.WriteByte('[')
		for i := range n {
			if i > 0 {
				out.WriteString(",\n")
			}
			c := tmpl
			for _, r := range rename(i) {
				c = bytes.ReplaceAll(c, []byte(r[0]), []byte(r[1]))
			}
			out.Write(c)
		}
		out.WriteByte(']')
		return out.Bytes()
	}
	svc := func(i int) [][2]string {
		return [][2]string{{host, fmt.Sprintf("svc-%05d.ns-%03d.svc.cluster.local", i, i%300)}}
	}
	var out bytes.Buffer
	out.WriteString("{\n \"configs\": [\n")
	sections := dumpArray(dumpField(src, "configs"))
	for n := 0; sections.Next(); n++ {
		sec := sections.Val()
		if n > 0 {
			out.WriteString(",\n")
		}
		typ := dumpStringField(sec, "@type")
		var list, tmpl []byte
		var count int
		var rename func(int) [][2]string
		switch typ {
		case "type.googleapis.com/envoy.admin.v3.ClustersConfigDump":
			list, count, rename = dumpField(sec, "dynamic_active_clusters"), nClusters, svc
		case "type.googleapis.com/envoy.admin.v3.ListenersConfigDump":
			list, count = dumpField(sec, "dynamic_listeners"), nClusters/250
			rename = func(i int) [][2]string {
				return append(svc(i), [2]string{`"main_internal"`, fmt.Sprintf(`"main_internal_%d"`, i)})
			}
		case "type.googleapis.com/envoy.admin.v3.RoutesConfigDump":
			list, count, rename = dumpField(sec, "static_route_configs"), nClusters/10, svc
		default:
			out.Write(sec)
			continue
		}
		first := dumpArray(list)
		if !first.Next() {
			tb.Fatalf("%s: %s has no resource to copy", benchDumpCapture, typ)
		}
		tmpl = first.Val()
		// Replace the list in the section with the copies.
		start := bytes.Index(sec, list)
		out.Write(sec[:start])
		out.Write(copies(tmpl, count, rename))
		out.Write(sec[start+len(list):])
	}
	out.WriteString("\n ]\n}\n")
	return out.Bytes()
}

// BenchmarkParseConfigDump parses and summarises a 5,000-cluster dump grown from a real one,
// as Envoy prints it (two-space indentation) and compacted.
func BenchmarkParseConfigDump(b *testing.B) {
	indented := makeBenchDump(b, 5000)
	var compact bytes.Buffer
	if err := json.Compact(&compact, indented); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		data []byte
	}{{"indented", indented}, {"compact", compact.Bytes()}} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := ParseConfigDump(bc.data)
			if err != nil {
				b.Fatal(err)
			}
			if len(s.Clusters) != 5002 || len(s.Warnings) != 0 {
				b.Fatalf("generated dump: %d clusters, warnings %v", len(s.Clusters), s.Warnings)
			}
			b.Logf("dump: %.1f MB, %d clusters, %d listeners, %d routes", float64(len(bc.data))/1e6, len(s.Clusters), len(s.Listeners), len(s.Routes))
			b.SetBytes(int64(len(bc.data)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := ParseConfigDump(bc.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
