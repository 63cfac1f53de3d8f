package diagnose

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

// FuzzExplain feeds arbitrary pasted text to explain. Access-log-shaped input also runs every
// rule over it, so a rule that panics on odd entries shows up here as a "failed on this
// evidence" warning, which the engine would otherwise hide from users.
func FuzzExplain(f *testing.F) {
	for _, seed := range []string{
		"UF", "UH,URX", "NoHealthyUpstream", "upstream_reset_before_response_started{connection_termination}",
		"upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote connection failure, transport failure reason: delayed connect error: 111",
		"upstream connect error or disconnect/reset before headers. reset reason: connection termination",
	} {
		f.Add(seed)
	}
	for _, file := range captures.Files(f, "access_log") {
		sc := bufio.NewScanner(bytes.NewReader(captures.Read(f, "access_log/"+file[strings.LastIndex(file, "/")+1:])))
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
				f.Add(line)
			}
		}
	}
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, in string) {
		r, err := Explain(in, now)
		if err != nil {
			return
		}
		for _, w := range r.Warnings {
			if strings.Contains(w, "failed on this evidence") {
				t.Fatalf("a rule panicked on %q: %s", in, w)
			}
		}
	})
}
