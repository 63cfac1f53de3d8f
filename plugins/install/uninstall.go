package install

import (
	"context"
	"fmt"
	"strings"

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

var (
	telemetryGVR  = schema.GroupVersionResource{Group: "telemetry.istio.io", Version: "v1", Resource: "telemetries"}
	deploymentGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

func firstN(ss []string, n int) []string {
	if len(ss) <= n {
		return ss
	}
	return append(ss[:n:n], fmt.Sprintf("and %d more", len(ss)-n))
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
	tel := p.Telemetry()
	telAction := "kept: it is the mesh's, and Istio's CRDs stay"
	guard := helm.BaseGuard{
		// Istio's CRDs stay while a control plane runs (another revision's) or while Istio
		// objects exist that kubectl-mesh did not create (unless --purge-crds).
		Keep: func(ctx context.Context) (string, error) {
			l, err := o.Dynamic.Resource(deploymentGVR).Namespace("").List(ctx, metav1.ListOptions{LabelSelector: "app=istiod"})
			if err != nil {
				return "", fmt.Errorf("listing control planes: %w", err)
			}
			if len(l.Items) > 0 && o.dryRun == apply.DryRunNone {
				return fmt.Sprintf("istiod %s/%s still runs and needs Istio's CRDs: uninstall its revision first", l.Items[0].GetNamespace(), l.Items[0].GetName()), nil
			}
			if o.PurgeCRDs {
				return "", nil
			}
			others, err := helm.ForeignIstioObjects(ctx, o.Dynamic)
			if err != nil || len(others) == 0 {
				return "", err
			}
			return fmt.Sprintf("its CRDs hold %d Istio objects kubectl-mesh did not create (%s); deleting the CRDs would delete them: rerun with --purge-crds to remove them too",
				len(others), strings.Join(firstN(others, 3), ", ")), nil
		},
		// The mesh-wide Telemetry goes with the CRDs, when it is ours.
		Before: func(ctx context.Context) error {
			cur, err := o.Dynamic.Resource(telemetryGVR).Namespace(p.Namespace).Get(ctx, tel.GetName(), metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				telAction = "not installed"
				return nil
			case err != nil:
				return err
			case !apply.IsOurs(cur):
				telAction = "kept: not created by kubectl-mesh (it goes with Istio's CRDs)"
				return nil
			}
			if err := o.Dynamic.Resource(telemetryGVR).Namespace(p.Namespace).Delete(ctx, tel.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting Telemetry %s/%s: %w", p.Namespace, tel.GetName(), err)
			}
			telAction = "deleted"
			return nil
		},
	}
	steps, err := e.Uninstall(ctx, p, guard)
	if err != nil {
		return err
	}
	if o.dryRun != apply.DryRunNone {
		telAction = "would be deleted with the base release, when that goes"
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
