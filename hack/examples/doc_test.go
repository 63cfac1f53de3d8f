package main

import "testing"

func TestDocShowsCommandsAsTyped(t *testing.T) {
	d := newDoc("/src/kubectl-mesh")
	cases := map[string][]string{
		"kubectl mesh why-slow --from ./testdata/incidents/timeout":       {"why-slow", "--from", "/src/kubectl-mesh/testdata/incidents/timeout"},
		"kubectl mesh explain 'reset reason: connection termination'":     {"explain", "reset reason: connection termination"},
		"kubectl mesh canary reviews --max-error-rate '1%'":               {"canary", "reviews", "--max-error-rate", "1%"},
		"kubectl mesh install --set istiod.istiodRemote.injectionURL=...": {"install", "--set", "istiod.istiodRemote.injectionURL=https://127.0.0.1:4321/inject/default"},
		// t.TempDir is in os.TempDir, whatever TMPDIR says.
		"kubectl mesh capture pod/p -o /tmp/... --window 2s": {"capture", "pod/p", "-o", t.TempDir() + "/keepalive.tar.gz", "--window", "2s"},
	}
	for want, args := range cases {
		if got := d.command(args); got != want {
			t.Errorf("command(%q) = %q, want %q", args, got, want)
		}
	}
}
