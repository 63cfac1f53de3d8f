package whyslow

import (
	"context"
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
			err := o.Run(context.Background())
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

func TestValidate(t *testing.T) {
	valid := func() *Options {
		return &Options{Window: time.Second, Concurrency: 8, Top: 20, QPS: 50, Burst: 100}
	}
	for _, tc := range []struct {
		name string
		edit func(o *Options)
		ok   bool
	}{
		{"live defaults", func(o *Options) {}, true},
		{"from a folder", func(o *Options) { o.From = "dir" }, true},
		{"from with a pod", func(o *Options) { o.From, o.Args = "dir", []string{"pod/x"} }, false},
		{"from with -A", func(o *Options) { o.From, o.AllNamespaces = "dir", true }, false},
		{"zero window", func(o *Options) { o.Window = 0 }, false},
		{"zero concurrency", func(o *Options) { o.Concurrency = 0 }, false},
		{"negative top", func(o *Options) { o.Top = -1 }, false},
		{"zero qps", func(o *Options) { o.QPS = 0 }, false},
		{"bad output", func(o *Options) { o.Output = "table" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := valid()
			tc.edit(o)
			err := o.Validate()
			if tc.ok && err != nil || !tc.ok && cli.Code(err) != cli.ExitUsage {
				t.Errorf("err = %v (exit %d), want ok=%v", err, cli.Code(err), tc.ok)
			}
		})
	}
}
