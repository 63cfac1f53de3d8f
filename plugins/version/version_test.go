package version

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func TestVersionOutputs(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		check func(t *testing.T, out string)
	}{
		{nil, func(t *testing.T, out string) {
			if !strings.HasPrefix(out, "kubectl-mesh dev (commit unknown, "+runtime.Version()) {
				t.Errorf("text output = %q", out)
			}
		}},
		{[]string{"-o", "json"}, func(t *testing.T, out string) {
			var info Info
			if err := json.Unmarshal([]byte(out), &info); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out)
			}
			if info.Version != "dev" || info.GoVersion != runtime.Version() || info.Commit != "unknown" {
				t.Errorf("info = %+v", info)
			}
		}},
		{[]string{"-o", "yaml"}, func(t *testing.T, out string) {
			if !strings.Contains(out, "goVersion: "+runtime.Version()) {
				t.Errorf("yaml output = %q", out)
			}
		}},
	} {
		streams, _, out, _ := genericiooptions.NewTestIOStreams()
		cmd := NewCmd(streams)
		cmd.SetArgs(tc.args)
		if err := cmd.Execute(); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		tc.check(t, out.String())
	}
}

func TestVersionRejectsUnknownOutput(t *testing.T) {
	streams, _, _, _ := genericiooptions.NewTestIOStreams()
	cmd := NewCmd(streams)
	cmd.SetArgs([]string{"-o", "wide"})
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "unknown output format") {
		t.Fatalf("err = %v", err)
	}
}
