package whyslow

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
)

func TestRunFailOn(t *testing.T) {
	for _, tc := range []struct {
		incident, failOn string
		code             int
	}{
		{"circuit-breaker", "", cli.ExitOK},
		{"circuit-breaker", "error", cli.ExitFindings},
		{"healthy", "warning", cli.ExitOK},
		{"stats-disabled", "warning", cli.ExitOK}, // an info finding does not meet warning
	} {
		t.Run(tc.incident+"/"+tc.failOn, func(t *testing.T) {
			streams, _, out, _ := genericiooptions.NewTestIOStreams()
			o := &Options{IOStreams: streams, From: filepath.Join("..", "..", "testdata", "incidents", tc.incident),
				Output: "json", FailOn: tc.failOn, Now: func() time.Time { return time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC) }}
			if err := o.Complete(nil); err != nil {
				t.Fatal(err)
			}
			if err := o.Validate(); err != nil {
				t.Fatal(err)
			}
			err := o.Run()
			if got := cli.Code(err); got != tc.code {
				t.Fatalf("exit code %d, want %d (err %v)", got, tc.code, err)
			}
			var r diagnose.Report
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatalf("output is not a JSON report: %v", err)
			}
			if r.Target == "" || r.Basis == "" {
				t.Errorf("report lacks target or basis: %+v", r)
			}
		})
	}
}

func TestValidateNeedsFrom(t *testing.T) {
	o := &Options{}
	if err := o.Validate(); cli.Code(err) != cli.ExitUsage {
		t.Fatalf("err = %v", err)
	}
}
