// Package mtls implements `kubectl mesh mtls`.
package mtls

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/install/mtls"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
)

const example = `  # Require mTLS for every workload of bookinfo, after checking no client would be cut off
  kubectl mesh mtls bookinfo --mode strict

  # The same mesh-wide (a PeerAuthentication in istio-system)
  kubectl mesh mtls --mesh --mode strict

  # Go back to accepting plaintext too
  kubectl mesh mtls bookinfo --mode permissive

  # Apply STRICT although plaintext clients were found (they will fail)
  kubectl mesh mtls bookinfo --mode strict --force`

// Options holds the flags and dependencies of `mtls`.
type Options struct {
	genericiooptions.IOStreams
	ConfigFlags *genericclioptions.ConfigFlags
	cli.WriteFlags

	Mesh          bool
	Mode          string
	Window        time.Duration
	VerifyTimeout time.Duration
	Force         bool

	// target is the namespace argument, empty with --mesh.
	target string
	args   []string
}

// NewCmd returns the `mtls` command.
func NewCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, ConfigFlags: flags}
	cmd := &cobra.Command{
		ValidArgsFunction: cli.CompleteNamespaces(flags),
		Use:               "mtls NAMESPACE|--mesh --mode strict|permissive",
		Short:             "Set a namespace's or the mesh's mTLS mode, refusing STRICT while plaintext clients exist",
		Long: `mtls applies a PeerAuthentication named default in the namespace (or in istio-system with
--mesh). Before STRICT it samples the namespace's sidecars over --window for inbound requests and
connections without mTLS, and lists the pods without a sidecar in the namespaces that call it:
STRICT would cut them off, so it refuses (exit 1) with the list unless --force. After applying,
it reads the sidecars' configuration until their inbound listeners are in the new mode.`,
		Example: example,
		RunE:    cli.RunE(o),
	}
	f := cmd.Flags()
	f.BoolVar(&o.Mesh, "mesh", false, "Set the mesh-wide mode (PeerAuthentication in istio-system) instead of a namespace's")
	f.StringVar(&o.Mode, "mode", "", "strict or permissive")
	f.DurationVar(&o.Window, "window", 10*time.Second, "Time over which the sidecars' inbound traffic is sampled for plaintext clients")
	f.DurationVar(&o.VerifyTimeout, "verify-timeout", time.Minute, "How long to wait for the sidecars to receive the new mode")
	f.BoolVar(&o.Force, "force", false, "Apply STRICT even though plaintext clients were found")
	o.AddFlags(f, cli.WriteUsage{
		DryRun:         "client prints the PeerAuthentication, server also looks for plaintext clients; nothing is changed",
		ForceConflicts: "Take over a PeerAuthentication (or its fields) another tool made",
	})
	return cmd
}

// Complete takes the namespace, reads --mode and builds the clients; a client dry run needs
// none.
func (o *Options) Complete(args []string) error {
	o.args = args
	if len(args) == 1 {
		o.target = args[0]
	}
	o.Mode = strings.ToUpper(o.Mode)
	return o.WriteFlags.Complete(o.ConfigFlags, true, "")
}

// Validate checks the arguments and flags.
func (o *Options) Validate() error {
	switch {
	case o.Mesh && len(o.args) > 0:
		return cli.UsageError("mtls takes a namespace or --mesh, not both")
	case !o.Mesh && len(o.args) != 1:
		return cli.UsageError("mtls takes one namespace (or --mesh): kubectl mesh mtls NAMESPACE --mode strict")
	}
	if o.Mode != mtls.ModeStrict && o.Mode != mtls.ModePermissive {
		return cli.UsageError("--mode is strict or permissive (got %q)", o.Mode)
	}
	return o.WriteFlags.Validate()
}

// Run checks, applies and verifies, and prints the result.
func (o *Options) Run(ctx context.Context) error {
	res, err := mtls.Run(ctx, mtls.Options{
		Client: o.Client, Dynamic: o.Dynamic, Mapper: o.Mapper, RESTConfig: o.RESTConfig,
		Namespace: o.target, Mesh: o.Mesh, Mode: o.Mode, Window: o.Window, VerifyTimeout: o.VerifyTimeout,
		Force: o.Force, DryRun: o.DryRun, ForceConflicts: o.ForceConflicts, Progress: o.ErrOut,
	})
	if err != nil {
		return err
	}
	if o.DryRun == apply.DryRunClient {
		for _, w := range res.Warnings {
			fmt.Fprintln(o.ErrOut, w)
		}
		return nil
	}
	if err := cli.Print(o.Out, o.Output, res, func(w io.Writer) error { return RenderText(w, res) }); err != nil {
		return err
	}
	if res.Refused || !verified(res) {
		return &cli.ExitError{Code: cli.ExitFindings}
	}
	return nil
}

func verified(r *mtls.Result) bool {
	for _, v := range r.Verified {
		if !v.OK {
			return false
		}
	}
	return true
}

// RenderText prints the clients found, what was applied, and the verification.
func RenderText(w io.Writer, r *mtls.Result) error {
	if len(r.Sampled) > 0 {
		fmt.Fprintf(w, "Sampled the inbound traffic of %d sidecars of %s.\n", len(r.Sampled), r.Target)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if len(r.Unsampled) > 0 {
		verb := "Refused"
		if !r.Refused {
			verb = "Applied anyway (--force)"
		}
		fmt.Fprintf(w, "%s: %d sidecars of %s could not be sampled, so their plaintext clients cannot be ruled out: %s\n",
			verb, len(r.Unsampled), r.Target, strings.Join(r.Unsampled, ", "))
		if r.Refused && len(r.Clients) == 0 {
			fmt.Fprintln(w, "Fix what the warnings name (often RBAC for pods/portforward, or a sidecar not ready) and rerun; --force applies STRICT anyway.")
			return nil
		}
	}
	if len(r.Clients) > 0 {
		verb := "Refused"
		if !r.Refused {
			verb = "Applied anyway (--force)"
		}
		fmt.Fprintf(w, "%s: %s would cut off these plaintext clients of %s:\n", verb, r.Mode, r.Target)
		for _, c := range r.Clients {
			line := "  - " + c.Source
			if c.Destination != "" {
				line += fmt.Sprintf(" -> %s: %.1f/s", c.Destination, c.RequestsPerSecond)
			}
			fmt.Fprintf(w, "%s   [%s]\n", line, c.Evidence)
		}
		if r.Refused {
			fmt.Fprintln(w, "Mesh those clients first (kubectl mesh inject NAMESPACE), or keep PERMISSIVE; --force applies STRICT anyway.")
			return nil
		}
	} else if r.Mode == mtls.ModeStrict {
		fmt.Fprintf(w, "No plaintext client of %s was found.\n", r.Target)
	}
	if r.Applied != nil {
		fmt.Fprintf(w, "%s (mode %s)\n", r.Applied, r.Mode)
	}
	if len(r.Verified) > 0 {
		ok := 0
		for _, v := range r.Verified {
			if v.OK {
				ok++
			}
		}
		fmt.Fprintf(w, "Verified in the sidecars' configuration: %d of %d have their inbound listeners in %s mode.\n", ok, len(r.Verified), r.Mode)
		for _, v := range r.Verified {
			if !v.OK {
				fmt.Fprintf(w, "  - %s is still %s: istiod has not pushed the change (check kubectl mesh status), or another policy overrides it\n", v.Pod, v.Mode)
			}
		}
	}
	return nil
}
