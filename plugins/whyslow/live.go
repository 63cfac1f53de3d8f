package whyslow

import (
	"context"
	"fmt"
	"io"

	"github.com/google/gops/agent"

	"github.com/kubectl-mesh/kubectl-mesh/collect"
	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
)

// runLive diagnoses the live pods the arguments name and prints one report or the sweep's.
func (o *Options) runLive(ctx context.Context) error {
	if o.DebugAgent {
		if err := agent.Listen(agent.Options{}); err != nil {
			return fmt.Errorf("--debug-agent: %w", err)
		}
		defer agent.Close()
		fmt.Fprintln(o.ErrOut, "gops agent listening: inspect this sweep with `gops stack <pid>` or `gops stats <pid>`")
	}
	res, err := collect.DiagnoseLive(ctx, collect.LiveOptions{
		Getter: o.Getter, Client: o.Client, Dynamic: o.Dynamic, RESTConfig: o.RESTConfig,
		Targets: collect.Targets{Args: o.Args, Namespace: o.Namespace, AllNamespaces: o.AllNamespaces, Selector: o.Selector},
		Window:  o.Window, DebugImage: o.DebugImage, Follow: o.Follow, Concurrency: o.Concurrency, Now: o.Now, Progress: o.ErrOut,
		Sweeping: func(total int) (func(int, int), func()) {
			bar := newProgressBar(o.ErrOut, total, o.Window)
			return bar.update, bar.finish
		},
	})
	if collect.IsTargetsError(err) {
		return &cli.ExitError{Code: cli.ExitUsage, Err: err}
	}
	if err != nil {
		return err
	}
	if res.Report != nil {
		return o.printReport(res.Report)
	}
	return o.printSweep(res.Sweep)
}

// printSweep prints the ranked summary and turns --fail-on into the exit code.
func (o *Options) printSweep(report *diagnose.SweepReport) error {
	if err := cli.Print(o.Out, o.Output, report, func(w io.Writer) error {
		return diagnose.RenderSweepText(w, report, diagnose.SweepTextOptions{Color: o.Color, Top: o.Top})
	}); err != nil {
		return err
	}
	worst := diagnose.Severity("")
	for i := range report.Pods {
		if r := report.Pods[i].Report; r != nil && r.Worst().Rank() > worst.Rank() {
			worst = r.Worst()
		}
	}
	return o.exitFor(worst)
}
