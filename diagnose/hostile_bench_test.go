package diagnose

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// What a hostile capture costs, whole (read, diagnose, print): go test ./diagnose -run '^$'
// -bench Hostile -benchmem. The README quotes the figures. Each benchmark also fails when the
// bound it is about does not hold (the output's size, the files read), never on time.

func benchCapture(b *testing.B, change map[string]func([]byte) []byte) string {
	b.Helper()
	return hostileCopy(b, "keepalive-race", change)
}

func benchWhole(b *testing.B, dir string) int {
	b.Helper()
	s, err := LoadDir(dir, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	var out bytes.Buffer
	if err := RenderText(&out, Diagnose(s, Rules()), TextOptions{}); err != nil {
		b.Fatal(err)
	}
	return out.Len()
}

// A 100 MB pod name in meta.json: refused as a name, quoted clipped, never printed whole.
func BenchmarkHostileHugePodName(b *testing.B) {
	name := strings.Repeat("p", 100<<20)
	dir := benchCapture(b, map[string]func([]byte) []byte{FileMeta: func([]byte) []byte {
		return []byte(`{"pod":"` + name + `","namespace":"default","windowSeconds":10,"captureTimes":["2024-04-16T14:02:11Z","2024-04-16T14:02:21Z"]}`)
	}})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if n := benchWhole(b, dir); n > 1<<20 {
			b.Fatalf("%d bytes of output", n)
		}
	}
}

// hops.json naming one file 10,000 times: read for 16 pods, each file once.
func BenchmarkHostileHopsRepeated(b *testing.B) {
	var pods []string
	for range 10000 {
		pods = append(pods, `{"namespace":"default","pod":"r","stats":"stats.prom","stats2":"stats-2.prom"}`)
	}
	hops := `{"upstream":"outbound|9080||details.default.svc.cluster.local","port":9080,"windowSeconds":10,"pods":[` + strings.Join(pods, ",") + `]}`
	dir := benchCapture(b, nil)
	os.WriteFile(filepath.Join(dir, FileHops), []byte(hops), 0o644)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		benchWhole(b, dir)
	}
}

// One 200 MB label in stats.prom: the line is skipped before it is parsed.
func BenchmarkHostileLongLabel(b *testing.B) {
	label := `envoy_cluster_upstream_rq_total{cluster_name="` + strings.Repeat("x", 200<<20) + "\"} 1\n"
	dir := benchCapture(b, map[string]func([]byte) []byte{FileStatsProm: func(d []byte) []byte { return append([]byte(label), d...) }})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		benchWhole(b, dir)
	}
}

// A 2 GB stats.prom (sparse): refused by its size, unread.
func BenchmarkHostileHugeFile(b *testing.B) {
	dir := benchCapture(b, nil)
	if err := os.Truncate(filepath.Join(dir, FileStatsProm), 2<<30); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s, err := LoadDir(dir, time.Now())
		if err != nil || s.StatsFile == FileStatsProm {
			b.Fatalf("%v; stats from %s", err, s.StatsFile)
		}
	}
}
