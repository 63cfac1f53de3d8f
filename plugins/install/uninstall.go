package install

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"

	"github.com/kubectl-mesh/kubectl-mesh/install"
	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/install/helm"
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

	Profile, Revision string
	PurgeCRDs         bool
	DryRunFlag        string
	Output            string

	dryRun  apply.DryRun
	Dynamic dynamic.Interface
}

var telemetryGVR = schema.GroupVersionResource{Group: "telemetry.istio.io", Version: "v1", Resource: "telemetries"}

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
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return cli.UsageError("uninstall takes no arguments (got %q)", args[0])
			}
			if err := cli.ValidateOutput(o.Output); err != nil {
				return err
			}
			d, err := cli.ParseDryRun(o.DryRunFlag)
			if err != nil {
				return err
			}
			o.dryRun = d
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Profile, "profile", install.ProfileDefault, "The profile installed (default includes the gateway)")
	f.StringVar(&o.Revision, "revision", "", "The revision installed")
	f.BoolVar(&o.PurgeCRDs, "purge-crds", false, "Also remove the base release and its CRDs while others' Istio objects exist (they are deleted with them)")
	cli.AddDryRunFlag(f, &o.DryRunFlag, "Say what would be removed; nothing is changed")
	f.StringVarP(&o.Output, "output", "o", "", "Output format: json or yaml (default: text)")
	return cmd
}

// Run uninstalls and prints what happened to each release.
func (o *UninstallOptions) Run(ctx context.Context) error {
	p, err := install.NewProfile(o.Profile, "")
	if err != nil {
		return cli.UsageError("%v", err)
	}
	p.Revision = o.Revision
	if o.Dynamic == nil {
		c, err := cli.Connect(o.ConfigFlags, 0, 0, "")
		if err != nil {
			return err
		}
		o.Dynamic = c.Dynamic
	}
	e := &helm.Engine{Getter: o.ConfigFlags, DryRun: o.dryRun, Progress: o.ErrOut}
	// The Telemetry goes first: it is an Istio object, and ours.
	tel := p.Telemetry()
	telAction := "not installed"
	cur, err := o.Dynamic.Resource(telemetryGVR).Namespace(p.Namespace).Get(ctx, tel.GetName(), metav1.GetOptions{})
	switch {
	case err == nil && !apply.IsOurs(cur):
		telAction = "kept: not created by kubectl-mesh"
	case err == nil && o.dryRun != apply.DryRunNone:
		telAction = "would be deleted"
	case err == nil:
		if err := o.Dynamic.Resource(telemetryGVR).Namespace(p.Namespace).Delete(ctx, tel.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting Telemetry %s/%s: %w", p.Namespace, tel.GetName(), err)
		}
		telAction = "deleted"
	}
	steps, err := e.Uninstall(ctx, p, func(ctx context.Context) ([]string, error) { return helm.ForeignIstioObjects(ctx, o.Dynamic) }, o.PurgeCRDs)
	if err != nil {
		return err
	}
	out := map[string]any{"telemetry": telAction, "releases": steps}
	if done, err := cli.PrintStructured(o.Out, o.Output, out); done {
		return err
	}
	fmt.Fprintf(o.Out, "Telemetry %s/%s %s\n", p.Namespace, tel.GetName(), telAction)
	for _, s := range steps {
		line := fmt.Sprintf("%s: release %s in %s %s", s.Name, s.Release, s.Namespace, s.Action)
		if s.Note != "" {
			line += ": " + s.Note
		}
		fmt.Fprintln(o.Out, line)
	}
	return nil
}
