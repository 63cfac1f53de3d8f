package whyslow

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/gops/agent"

	"github.com/kubectl-mesh/kubectl-mesh/collect"
	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
)

func (o *Options) runLive(ctx context.Context) error {
	if o.DebugAgent {
		if err := agent.Listen(agent.Options{}); err != nil {
			return fmt.Errorf("--debug-agent: %w", err)
		}
		defer agent.Close()
		fmt.Fprintln(o.ErrOut, "gops agent listening: inspect this sweep with `gops stack <pid>` or `gops stats <pid>`")
	}
	targets := collect.Targets{Args: o.Args, Namespace: o.Namespace, AllNamespaces: o.AllNamespaces, Selector: o.Selector}
	pods, err := collect.ResolveTargets(ctx, o.Getter, o.Client, targets)
	if err != nil {
		return &cli.ExitError{Code: cli.ExitUsage, Err: unreachableHint(err)}
	}
	capture := collect.CaptureOptions{
		Client: o.Client, Dynamic: o.Dynamic, RESTConfig: o.RESTConfig, Window: o.Window, Now: o.Now,
		DebugImage: o.DebugImage,
		// A namespace's Services and Istio objects are listed once, a node's cAdvisor read once
		// per sample for all its pods; a sweep lists the namespace's pod events once too.
		KubeCache: &collect.KubeCache{ShareEvents: targets.Sweep()},
	}
	if !targets.Sweep() {
		p := pods.Meshed[0]
		capture.Namespace, capture.Pod, capture.Known, capture.Progress = p.Namespace, p.Name, &p, o.ErrOut
		report, _, err := collect.DiagnosePod(ctx, capture, o.Follow)
		if err != nil {
			return err
		}
		return o.printReport(report)
	}
	return o.sweep(ctx, targets, pods, capture)
}

// sweep diagnoses a set of pods and prints the ranked summary.
func (o *Options) sweep(ctx context.Context, t collect.Targets, pods *collect.Resolved, capture collect.CaptureOptions) error {
	scope := scopeOf(t)
	if len(pods.Meshed) == 0 {
		return &cli.ExitError{Code: cli.ExitUsage, Err: fmt.Errorf("no meshed pods in %s (%d pods without an istio-proxy sidecar): label the namespace istio-injection=enabled and restart its workloads, or pass -n/-A",
			scope, len(pods.Unmeshed))}
	}
	bar := newProgressBar(o.ErrOut, len(pods.Meshed), o.Window)
	results := collect.Sweep(ctx, collect.SweepOptions{
		Capture: capture, Pods: pods.Meshed, Concurrency: o.Concurrency, Done: bar.update,
	})
	bar.finish()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sweep of %s interrupted: %w", scope, err)
	}
	report := &diagnose.SweepReport{Scope: scope, WindowSeconds: o.Window.Seconds(), Pods: results}
	for _, p := range pods.Unmeshed {
		report.Unmeshed = append(report.Unmeshed, p.Namespace+"/"+p.Name)
	}
	diagnose.RankPods(report.Pods)
	if done, err := cli.PrintStructured(o.Out, o.Output, report); done {
		if err != nil {
			return err
		}
	} else if err := diagnose.RenderSweepText(o.Out, report, diagnose.SweepTextOptions{Color: o.Color, Top: o.Top}); err != nil {
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

func scopeOf(t collect.Targets) string {
	var s string
	switch {
	case len(t.Args) > 0 && t.AllNamespaces:
		s = strings.Join(t.Args, ", ") + " in all namespaces"
	case len(t.Args) > 0:
		s = strings.Join(t.Args, ", ") + " in namespace " + t.Namespace
	case t.AllNamespaces:
		s = "all namespaces"
	default:
		s = "namespace " + t.Namespace
	}
	if t.Selector != "" {
		s += " with labels " + t.Selector
	}
	return s
}

// unreachableHint adds what to do to the errors of an API server that cannot be reached.
func unreachableHint(err error) error {
	msg := err.Error()
	for _, s := range []string{"connection refused", "no such host", "i/o timeout", "dial tcp", "the server could not find", "Unauthorized"} {
		if strings.Contains(msg, s) {
			return fmt.Errorf("%w; check that the cluster is reachable with `kubectl get pods` (--context, --kubeconfig or KUBECONFIG), or diagnose a capture with --from DIR", err)
		}
	}
	return err
}
