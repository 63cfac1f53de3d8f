package diagnose

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Evidence from strangers, through the engine (the reader's own rules are tested in
// evidence/hostile_test.go): names from evidence never reach a command unchecked, and nothing
// from evidence reaches a terminal raw.

// hostileCopy copies an incident into a temp folder and lets the test change its files.
func hostileCopy(t testing.TB, incident string, change map[string]func([]byte) []byte) string {
	t.Helper()
	src := filepath.Join("..", "testdata", "incidents", incident)
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if f := change[e.Name()]; f != nil {
			b = f(b)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func hostileReport(t *testing.T, dir string) (*Report, string) {
	t.Helper()
	s, err := LoadDir(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r := Diagnose(s, Rules())
	var out bytes.Buffer
	if err := RenderText(&out, r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	return r, out.String()
}

func TestHostileNamesNeverReachACommand(t *testing.T) {
	dir := hostileCopy(t, "keepalive-race", map[string]func([]byte) []byte{
		FileMeta: func([]byte) []byte {
			return []byte(`{"pod":"x; rm -rf /","namespace":"$(id)","captureTimes":["2024-04-16T14:02:11Z","2024-04-16T14:02:21Z"],"windowSeconds":10}`)
		},
		FilePod: func(b []byte) []byte {
			b = bytes.Replace(b, []byte("name: productpage-v1-6c5b8d6b9f-k7x2m"), []byte("name: \"x; rm -rf /\""), 1)
			return bytes.Replace(b, []byte("namespace: default"), []byte("namespace: \"$(id)\""), 1)
		},
	})
	r, text := hostileReport(t, dir)
	for _, f := range r.Findings {
		for _, cmd := range []string{f.Fix.Command, f.Fix.YAML} {
			if strings.Contains(cmd, "rm -rf") || strings.Contains(cmd, "$(id)") {
				t.Errorf("%s prints a name from the evidence into its fix:\n%s", f.Code, cmd)
			}
		}
	}
	if !strings.Contains(text, `"x; rm -rf /" is not a Kubernetes name`) {
		t.Errorf("no warning names the refused pod name:\n%s", text)
	}
}

func TestHostileControlCharactersAreEscaped(t *testing.T) {
	const esc = "\x1b]0;pwned\x07\x1b[2J"
	dir := hostileCopy(t, "keepalive-race", map[string]func([]byte) []byte{
		FileMeta: func([]byte) []byte {
			return []byte(`{"pod":"p` + strings.ReplaceAll(esc, "\x1b", `\u001b`) + `","namespace":"default","windowSeconds":10,"captureTimes":["2024-04-16T14:02:11Z","2024-04-16T14:02:21Z"]}`)
		},
		// A cluster name carrying the same sequence, in both samples.
		FileStatsProm: func(b []byte) []byte {
			return bytes.ReplaceAll(b, []byte("details.default.svc.cluster.local"), []byte("details.default.svc.cluster.local"+esc))
		},
		FileStats2Prom: func(b []byte) []byte {
			return bytes.ReplaceAll(b, []byte("details.default.svc.cluster.local"), []byte("details.default.svc.cluster.local"+esc))
		},
	})
	r, text := hostileReport(t, dir)
	if strings.ContainsAny(text, "\x1b\x07") {
		t.Errorf("raw control characters in the text report:\n%q", text)
	}
	js, err := json.Marshal(r)
	if err != nil || bytes.ContainsAny(js, "\x1b\x07") {
		t.Errorf("JSON: %v, raw controls: %v", err, bytes.ContainsAny(js, "\x1b\x07"))
	}
	rep, err := Explain("upstream connect error or disconnect/reset before headers. reset reason: overflow "+esc, fxNow)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	RenderText(&out, rep, TextOptions{})
	if strings.ContainsAny(out.String(), "\x1b\x07") {
		t.Errorf("explain printed raw controls:\n%q", out.String())
	}
	if TermSafe("a\x1bb\u202ec\nd") != `a\x1bb\u202ec\x0ad` {
		t.Errorf("TermSafe = %q", TermSafe("a\x1bb\u202ec\nd"))
	}
}

func TestHostileFolderSymlinkThroughTheEngine(t *testing.T) {
	dir := hostileCopy(t, "keepalive-race", nil)
	os.Remove(filepath.Join(dir, FileStatsProm))
	if err := os.Symlink("/proc/self/environ", filepath.Join(dir, FileStatsProm)); err != nil {
		t.Skip(err)
	}
	os.Setenv("MESH_HOSTILE_SECRET", "hunter2")
	defer os.Unsetenv("MESH_HOSTILE_SECRET")
	_, text := hostileReport(t, dir)
	if strings.Contains(text, "hunter2") {
		t.Fatal("the environment was echoed through a symlinked stats.prom")
	}
	if !strings.Contains(text, "symbolic link") {
		t.Errorf("the refusal is not said:\n%s", text)
	}
}

func hostileMeta(window string, times ...string) map[string]func([]byte) []byte {
	q := make([]string, len(times))
	for i, t := range times {
		q[i] = `"` + t + `"`
	}
	meta := `{"pod":"productpage-v1-6c5b8d6b9f-k7x2m","namespace":"default","captureTimes":[` + strings.Join(q, ",") + `]`
	if window != "" {
		meta += `,"windowSeconds":` + window
	}
	return map[string]func([]byte) []byte{FileMeta: func([]byte) []byte { return []byte(meta + "}") }}
}

// Absurd windows and capture times are refused with a warning that says which value and why;
// no rate is computed from them.
func TestHostileMetaTimes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change map[string]func([]byte) []byte
		want   string
		window time.Duration // the window still read from the other field
	}{
		{"a nanosecond window", hostileMeta("1e-9"), "windowSeconds 1e-09 is not a window", 0},
		{"a window of 1e308 s", hostileMeta("1e308"), "windowSeconds 1e+308 is not a window", 0},
		{"a nanosecond window, good times", hostileMeta("1e-9", "2024-04-16T14:02:11Z", "2024-04-16T14:02:21Z"), "windowSeconds 1e-09 is not a window", 10 * time.Second},
		{"year 1", hostileMeta("", "0001-01-01T00:00:00Z", "2024-04-16T14:02:21Z"), "0001-01-01T00:00:00Z is not a time a capture was taken", 0},
		{"year 9999", hostileMeta("", "2024-04-16T14:02:11Z", "9999-01-01T00:00:00Z"), "9999-01-01T00:00:00Z is not a time a capture was taken", 0},
		{"reversed times", hostileMeta("", "2024-04-16T14:02:21Z", "2024-04-16T14:02:11Z"), "is not after the first", 0},
	} {
		dir := hostileCopy(t, "keepalive-race", tc.change)
		s, err := LoadDir(dir, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		w := strings.Join(s.Warnings, "\n")
		if !strings.Contains(w, tc.want) || (tc.window == 0) != strings.Contains(w, "single cumulative sample") {
			t.Errorf("%s: warnings\n%s", tc.name, w)
		}
		if s.Window != tc.window {
			t.Errorf("%s: window %v, want %v", tc.name, s.Window, tc.window)
		}
		r := Diagnose(s, Rules())
		for _, f := range r.Findings {
			for _, e := range f.Evidence {
				if e.Unit == UnitPerSecond && e.Value > 1e6 {
					t.Errorf("%s: %s %q = %v/s", tc.name, f.Code, e.Label, e.Value)
				}
				if e.Unit == UnitDays && e.Value < -1e5 {
					t.Errorf("%s: %s %q = %v days", tc.name, f.Code, e.Label, e.Value)
				}
			}
		}
	}
}

// Every degradation is said: an empty second sample, a bad first sample beside a good second,
// a pod.yaml with no pod in it.
func TestHostileDegradationsAreSaid(t *testing.T) {
	empty := func([]byte) []byte { return nil }
	for _, tc := range []struct {
		name   string
		change map[string]func([]byte) []byte
		want   string
	}{
		{"empty stats-2.prom", map[string]func([]byte) []byte{FileStats2Prom: empty}, "stats-2.prom holds no Envoy stats: stats.prom is read alone"},
		{"bad stats.prom, good stats-2.prom", map[string]func([]byte) []byte{FileStatsProm: func([]byte) []byte { return []byte("{not prometheus") }}, "stats-2.prom is not read: a second sample needs the first"},
		{"empty pod.yaml", map[string]func([]byte) []byte{FilePod: func([]byte) []byte { return []byte("{}") }}, "pod.yaml: holds no Pod"},
	} {
		s, err := LoadDir(hostileCopy(t, "keepalive-race", tc.change), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if w := strings.Join(s.Warnings, "\n"); !strings.Contains(w, tc.want) {
			t.Errorf("%s: warnings\n%s", tc.name, w)
		}
	}
}

// NaN and infinite counters are refused where they are parsed, and -o json never fails.
func TestHostileNonFiniteCounters(t *testing.T) {
	nan := func(b []byte) []byte {
		const line = `envoy_cluster_upstream_rq_pending_overflow{cluster_name="outbound|9080||reviews.default.svc.cluster.local"} `
		if !bytes.Contains(b, []byte(line+"0")) {
			panic("the incident changed: no " + line)
		}
		return bytes.Replace(b, []byte(line+"0"), []byte(line+"+Inf"), 1)
	}
	s, err := LoadDir(hostileCopy(t, "keepalive-race", map[string]func([]byte) []byte{FileStats2Prom: nan}), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r := Diagnose(s, Rules())
	if _, err := json.Marshal(r); err != nil {
		t.Fatalf("-o json fails: %v", err)
	}
	for _, f := range r.Findings {
		if f.Category == CategoryCircuitBreaker {
			t.Errorf("an infinite counter made a finding: %s %s", f.Code, f.Title)
		}
	}
}
