package envoyadmin

import (
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

// FuzzParseConfigDump feeds ParseConfigDump the real dumps, cut and mutated: it must never
// panic (a panic in a decoding worker is recovered as an "internal error" warning, which counts
// as a failure here too), and must return either an error or a summary.
//
// Seeds are the captures up to 64 KiB whole and the larger ones cut at 64 KiB, plus a small
// valid dump made from each capture. Go's fuzzer minimises every input that finds new coverage,
// and on inputs of tens of KiB that takes most of a short run (it then reports "0/sec"): pass
// -fuzzminimizetime=50x for a productive run. Whole dumps of several hundred KiB would take all
// of it, so they are not seeds; TestParseConfigDumpMutations covers them.
func FuzzParseConfigDump(f *testing.F) {
	const cut = 64 << 10
	files := append(captures.Files(f, "config_dump"), captures.Path(f, "certs/istio-secrets-config-dump-sds.json"))
	for _, path := range files {
		rel, _ := filepath.Rel(captures.Dir(f), path)
		data := captures.Read(f, rel)
		if len(data) > cut {
			captures.Seed(f, data[:cut])
		} else {
			captures.Seed(f, data)
		}
		captures.Seed(f, cdShrinkDump(f, data, 2))
	}
	for _, s := range [][]byte{
		cdDump(cdAutoMTLSCluster),
		cdDump(cdSection("ClustersConfigDump", `"dynamic_active_clusters": [{"cluster": `+cdAutoMTLSCluster+`}]`)),
		cdDump(cdSection("ListenersConfigDump", `"dynamic_listeners": [`+cdVirtualInbound(true)+`]`)),
		[]byte(`{"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "static_clusters": {"cluster": {"name": "[redacted]"}}}]}`),
		[]byte(`{"configs": []}`),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseConfigDump(data)
		if err != nil {
			if s != nil {
				t.Fatalf("summary %+v with error %v", s, err)
			}
			return
		}
		if s == nil {
			t.Fatal("nil summary without error")
		}
		for _, w := range s.Warnings {
			if strings.Contains(w, "internal error") {
				t.Fatalf("panic while decoding: %s", w)
			}
		}
	})
}

// TestParseConfigDumpMutations parses a fixed set of random mutations of the real dumps (bytes
// changed, removed, duplicated, brackets and quotes inserted, cuts). The native fuzzer spends
// most of a short run minimising large inputs; this gives every test run a broad sweep.
func TestParseConfigDumpMutations(t *testing.T) {
	n := 1500
	if testing.Short() {
		n = 150
	}
	var seeds [][]byte
	for _, path := range captures.Files(t, "config_dump") {
		rel, _ := filepath.Rel(captures.Dir(t), path)
		data := captures.Read(t, rel)
		seeds = append(seeds, data, cdShrinkDump(t, data, 2))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range n {
		d := slices.Clone(seeds[r.IntN(len(seeds))])
		for k := r.IntN(8) + 1; k > 0 && len(d) > 0; k-- {
			i := r.IntN(len(d))
			switch r.IntN(5) {
			case 0:
				d[i] = byte(r.IntN(256))
			case 1:
				d = slices.Delete(d, i, min(len(d), i+1+r.IntN(32)))
			case 2:
				j := r.IntN(len(d))
				d = slices.Insert(d, i, slices.Clone(d[min(i, j):min(max(i, j), min(i, j)+256)])...)
			case 3:
				d[i] = `{}[]",:\0n`[r.IntN(10)]
			case 4:
				d = d[:i]
			}
		}
		s, err := ParseConfigDump(d)
		if err == nil && s == nil {
			t.Fatalf("nil summary without error for %q", d)
		}
		if s != nil {
			for _, w := range s.Warnings {
				if strings.Contains(w, "internal error") {
					t.Fatalf("panic while decoding: %s\ninput: %q", w, d)
				}
			}
		}
	}
}

// cdShrinkDump keeps the first n resources of every list of a dump (and drops the bootstrap's
// extension list), keeping the dump valid and its shapes real.
func cdShrinkDump(tb testing.TB, data []byte, n int) []byte {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		tb.Fatal(err)
	}
	var shrink func(v any) any
	shrink = func(v any) any {
		switch t := v.(type) {
		case map[string]any:
			delete(t, "extensions")
			for k, e := range t {
				t[k] = shrink(e)
			}
		case []any:
			if len(t) > n {
				t = t[:n]
			}
			for i, e := range t {
				t[i] = shrink(e)
			}
			return t
		}
		return v
	}
	top := v.(map[string]any)
	for i, sec := range top["configs"].([]any) {
		top["configs"].([]any)[i] = shrink(sec)
	}
	out, err := json.MarshalIndent(top, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
