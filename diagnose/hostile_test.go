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
func hostileCopy(t *testing.T, incident string, change map[string]func([]byte) []byte) string {
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
