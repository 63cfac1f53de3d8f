// Package inject implements `kubectl mesh inject`.
package inject

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"istio.io/api/label"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/install/inject"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
)

const example = `  # Inject the default revision's sidecar into every workload of bookinfo and wait for 2/2
  kubectl mesh inject bookinfo

  # Move a namespace to a revisioned control plane (canary upgrade of Istio)
  kubectl mesh inject bookinfo --revision 1-30

  # Only label the namespace; pods get the sidecar when they are next recreated
  kubectl mesh inject bookinfo --no-restart

  # Show what would change
  kubectl mesh inject bookinfo --dry-run

  # Ambient mode instead: no sidecar, no restart; waits until istio-cni has enrolled the pods
  kubectl mesh inject bookinfo --ambient`

// Options holds the flags and dependencies of `inject`.
type Options struct {
	genericiooptions.IOStreams
	ConfigFlags *genericclioptions.ConfigFlags
	cli.WriteFlags

	Namespace string
	Revision  string
	NoRestart bool
	Ambient   bool
	Timeout   time.Duration
}

// NewCmd returns the `inject` command.
func NewCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, ConfigFlags: flags}
	cmd := &cobra.Command{
		ValidArgsFunction: cli.CompleteNamespaces(flags),
		Use:               "inject NAMESPACE [--revision R] [--no-restart]",
		Short:             "Turn sidecar injection on for a namespace, restart its workloads and wait until their pods are 2/2",
		Long: `inject labels the namespace for injection (istio-injection=enabled, or istio.io/rev=R with
--revision), restarts the Deployments, StatefulSets and DaemonSets whose pods lack the sidecar
of that revision (as kubectl rollout restart does), waits until their pods run with a ready
sidecar, and explains the pods that do not: a sidecar not ready or OOM-killed, a node short of
memory, an injector that did not act. Workloads already meshed are not restarted, so running it
twice changes nothing. Exit status 1 when a pod is not 2/2.

With --ambient it labels the namespace istio.io/dataplane-mode=ambient instead and waits until
istio-cni has enrolled its running pods (ambient.istio.io/redirection: enabled), with no restart;
pods with a sidecar keep it until they restart. Exit status 1 when a pod is not enrolled.`,
		Example: example,
		RunE:    cli.RunE(o),
	}
	f := cmd.Flags()
	f.StringVar(&o.Revision, "revision", "", "Control plane revision to inject (istio.io/rev); empty for the default revision")
	f.BoolVar(&o.NoRestart, "no-restart", false, "Only label the namespace; do not restart its workloads")
	f.BoolVar(&o.Ambient, "ambient", false, "Put the namespace in Istio's ambient mode (istio.io/dataplane-mode=ambient) instead: no sidecar and no restart; waits until istio-cni has enrolled its running pods")
	f.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "How long to wait for the restarted pods")
	o.AddFlags(f, cli.WriteUsage{
		DryRun:         "client prints the changes, server validates them; nothing is changed",
		ForceConflicts: "Take over fields another manager owns (and remove istio-injection when moving to a revision)",
	})
	return cmd
}

// Complete takes the namespace and builds the clients; a client dry run needs none.
func (o *Options) Complete(args []string) error {
	if len(args) != 1 {
		return cli.UsageError("inject takes one namespace: kubectl mesh inject NAMESPACE (got %d arguments)", len(args))
	}
	o.Namespace = args[0]
	return o.WriteFlags.Complete(o.ConfigFlags, true, "")
}

// Validate checks the flags.
func (o *Options) Validate() error {
	if err := o.WriteFlags.Validate(); err != nil {
		return err
	}
	if o.Ambient && (o.Revision != "" || o.NoRestart) {
		return cli.UsageError("--ambient restarts nothing and injects no sidecar: leave out --revision and --no-restart")
	}
	if strings.ContainsAny(o.Revision, ". /") {
		return cli.UsageError("--revision %q: a revision is a DNS label such as 1-30", o.Revision)
	}
	return nil
}

// Run injects and prints the result; a client dry run prints the namespace's label only.
func (o *Options) Run(ctx context.Context) error {
	if o.Ambient {
		return o.runAmbient(ctx)
	}
	if o.DryRun == apply.DryRunClient {
		a := &apply.Applier{Out: o.Out, Options: apply.Options{DryRun: apply.DryRunClient}}
		_, err := (&inject.Options{Namespace: o.Namespace, Revision: o.Revision, DryRun: apply.DryRunClient}).Label(ctx, a)
		fmt.Fprintln(o.ErrOut, "client dry run: printed the namespace's label; which workloads would restart needs the cluster: use --dry-run=server")
		return err
	}
	res, err := inject.Run(ctx, inject.Options{
		Client: o.Client, Dynamic: o.Dynamic, Mapper: o.Mapper,
		Namespace: o.Namespace, Revision: o.Revision, Restart: !o.NoRestart,
		Timeout: o.Timeout, DryRun: o.DryRun, ForceConflicts: o.ForceConflicts, Progress: o.ErrOut,
	})
	if err != nil {
		return err
	}
	if err := cli.Print(o.Out, o.Output, res, func(w io.Writer) error { return RenderText(w, res) }); err != nil {
		return err
	}
	if len(res.Problems) > 0 {
		return &cli.ExitError{Code: cli.ExitFindings}
	}
	return nil
}

// RenderText prints the namespace's label, one row per workload, and the pods not well.
func RenderText(w io.Writer, r *inject.Result) error {
	label := "istio-injection=enabled"
	if r.Revision != "default" {
		label = "istio.io/rev=" + r.Revision
	}
	fmt.Fprintf(w, "namespace %s: %s %s\n", r.Namespace, label, r.Label.Action)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, wl := range r.Workloads {
		pods := ""
		if wl.Pods > 0 && (wl.Action == "restarted" || wl.Action == "already meshed") {
			pods = fmt.Sprintf("%d of %d pods meshed and ready", wl.Meshed, wl.Pods)
		}
		fmt.Fprintf(tw, "  %s/%s\t%s\t%s\n", strings.ToLower(wl.Kind), wl.Name, wl.Action, pods)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Problems) == 0 {
		_, err := fmt.Fprintln(w, "Every pod runs with its sidecar.")
		return err
	}
	fmt.Fprintln(w, "Not 2/2:")
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  %s (%s) %s: %s\n", p.Pod, p.Workload, p.Ready, p.Reason)
		if p.Fix != "" {
			fmt.Fprintf(w, "      fix: %s\n", p.Fix)
		}
	}
	return nil
}

func (o *Options) runAmbient(ctx context.Context) error {
	res, err := inject.RunAmbient(ctx, inject.Options{
		Client: o.Client, Dynamic: o.Dynamic, Mapper: o.Mapper, Namespace: o.Namespace,
		Timeout: o.Timeout, DryRun: o.DryRun, ForceConflicts: o.ForceConflicts, Progress: o.ErrOut, Manifests: o.Out,
	})
	if err != nil || o.DryRun == apply.DryRunClient {
		return err
	}
	if err := cli.Print(o.Out, o.Output, res, func(w io.Writer) error { return RenderAmbient(w, res) }); err != nil {
		return err
	}
	if res.Unenrolled > 0 {
		return &cli.ExitError{Code: cli.ExitFindings}
	}
	return nil
}

// RenderAmbient prints the namespace's label and what the ambient mesh does with each pod.
func RenderAmbient(w io.Writer, r *inject.AmbientResult) error {
	fmt.Fprintf(w, "namespace %s: %s=ambient %s\n", r.Namespace, label.IoIstioDataplaneMode.Name, r.Label.Action)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, p := range r.Pods {
		fmt.Fprintf(tw, "  pod/%s\t%s\n", p.Pod, p.State)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Unenrolled == 0 {
		_, err := fmt.Fprintln(w, "Every pod the ambient mesh should carry is enrolled.")
		return err
	}
	_, err := fmt.Fprintf(w, "%d pods are not enrolled: check ztunnel and the istio-cni agent on their nodes (kubectl mesh status), and kubectl mesh why-slow pod/NAME -n %s says why for each.\n", r.Unenrolled, r.Namespace)
	return err
}
