package envoyadmin

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/benchdump"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

// BenchmarkParseConfigDump parses and summarises a 5,000-cluster dump grown from a real one,
// as Envoy prints it (two-space indentation) and compacted.
func BenchmarkParseConfigDump(b *testing.B) {
	indented, err := benchdump.Grow(captures.Read(b, benchdump.Capture), 5000)
	if err != nil {
		b.Fatal(err)
	}
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
