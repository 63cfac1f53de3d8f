package envoyadmin

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/internal/captures"
)

// FuzzParseConfigDump feeds ParseConfigDump the real dumps, cut and mutated: it must never
// panic (a panic in a decoding worker is recovered as an "internal error" warning, which counts
// as a failure here too), and must return either an error or a summary.
//
// Seeds are the captures up to 64 KiB whole and the larger ones cut at 64 KiB, plus a small
// valid dump made from each capture: the fuzzer minimises every input that finds new coverage,
// which takes seconds per input of a few hundred KiB, so whole large dumps would leave it
// minimising instead of fuzzing.
func FuzzParseConfigDump(f *testing.F) {
	const cut = 64 << 10
	files := append(captures.Files(f, "config_dump"), captures.Path(f, "certs/istio-secrets-config-dump-sds.json"))
	for _, path := range files {
		rel, _ := filepath.Rel(captures.Dir(f), path)
		data := captures.Read(f, rel)
		if len(data) > cut {
			f.Add(data[:cut])
		} else {
			f.Add(data)
		}
		f.Add(cdShrinkDump(f, data, 2))
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
