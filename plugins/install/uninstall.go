package install

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/install"
	"github.com/kubectl-mesh/kubectl-mesh/install/uninstall"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
)

const uninstallExample = `  # Remove what kubectl mesh install installed (releases it made, its Telemetry)
  kubectl mesh uninstall

  # A revisioned control plane
  kubectl mesh uninstall --revision 1-30

  # Also delete Istio's CRDs, and with them every Istio object in the cluster
  kubectl mesh uninstall --purge-crds`

// UninstallOptions holds the flags of `uninstall`.
type UninstallOptions struct {
	genericiooptions.IOStreams
	ConfigFlags *genericclioptions.ConfigFlags
	cli.WriteFlags

	Profile, Revision string
	PurgeCRDs         bool

	profile *install.Profile
}

// NewUninstallCmd returns the `uninstall` command.
func NewUninstallCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &UninstallOptions{IOStreams: streams, ConfigFlags: flags}
	cmd := &cobra.Command{
		Use:   "uninstall [--revision R] [--purge-crds]",
		Short: "Remove what kubectl mesh install installed, and nothing else",
		Long: `uninstall removes the Helm releases kubectl mesh install made (those labelled
app.kubernetes.io/managed-by=kubectl-mesh), the gateway and istiod first, and its mesh-wide
Telemetry. The base release holds Istio's CRDs, and deleting them deletes every Istio object in
the cluster: it is kept while Istio objects exist that kubectl-mesh did not create, unless
--purge-crds. Releases other tools installed are left alone.`,
		Example: uninstallExample,
		RunE:    cli.RunE(o),
	}
	f := cmd.Flags()
	f.StringVar(&o.Profile, "profile", install.ProfileDefault, "The profile installed (default includes the gateway)")
	f.StringVar(&o.Revision, "revision", "", "The revision installed")
	f.BoolVar(&o.PurgeCRDs, "purge-crds", false, "Also remove the base release and its CRDs while others' Istio objects exist (they are deleted with them)")
	o.AddFlags(f, cli.WriteUsage{DryRun: "Say what would be removed; nothing is changed"})
	return cmd
}

// Complete builds the profile and the clients.
func (o *UninstallOptions) Complete(args []string) error {
	if err := cli.NoArgs("uninstall", args); err != nil {
		return err
	}
	p, err := install.NewProfile(o.Profile, "")
	if err != nil {
		return cli.UsageError("%v", err)
	}
	p.Revision = o.Revision
	o.profile = p
	return o.WriteFlags.Complete(o.ConfigFlags, false, "")
}

// Validate checks the flags.
func (o *UninstallOptions) Validate() error { return o.WriteFlags.Validate() }

// Run uninstalls and prints what happened to each release.
func (o *UninstallOptions) Run(ctx context.Context) error {
	res, err := uninstall.Run(ctx, uninstall.Options{Getter: o.ConfigFlags, Dynamic: o.Dynamic, Profile: o.profile,
		PurgeCRDs: o.PurgeCRDs, DryRun: o.DryRun, Progress: o.ErrOut})
	if err != nil {
		return err
	}
	return cli.Print(o.Out, o.Output, res, func(w io.Writer) error { return renderUninstall(w, res) })
}

func renderUninstall(w io.Writer, r *uninstall.Result) error {
	fmt.Fprintf(w, "Telemetry %s/%s %s\n", r.Namespace, r.Name, r.Telemetry)
	for _, s := range r.Releases {
		line := fmt.Sprintf("%s: release %s in %s %s", s.Name, s.Release, s.Namespace, s.Action)
		if s.Note != "" {
			line += ": " + s.Note
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}
