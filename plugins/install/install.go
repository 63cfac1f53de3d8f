// Package install implements `kubectl mesh install` and `kubectl mesh uninstall`. They are built
// into the kubectl-mesh-install binary, which kubectl-mesh runs for them: Helm's SDK would add
// its start-up cost to every other kubectl mesh command.
package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	helmcli "helm.sh/helm/v4/pkg/cli"
	"helm.sh/helm/v4/pkg/cli/values"
	"helm.sh/helm/v4/pkg/getter"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/install"
	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/install/check"
	"github.com/kubectl-mesh/kubectl-mesh/install/helm"
	"github.com/kubectl-mesh/kubectl-mesh/install/installer"
	"github.com/kubectl-mesh/kubectl-mesh/install/istioctl"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
)

const example = `  # Check the cluster, then install Istio's production profile (istiod and an ingress gateway)
  kubectl mesh install --check --inject-namespaces bookinfo
  kubectl mesh install

  # Only istiod, as revision 1-30 beside an existing control plane, with a change of your own
  kubectl mesh install --profile minimal --revision 1-30 --set istiod.pilot.autoscaleMin=2

  # Ambient mode: istiod, the istio-cni node agent and ztunnel, no sidecars
  kubectl mesh install --profile ambient

  # Every manifest, without changing anything (no cluster needed)
  kubectl mesh install --dry-run

  # An air-gapped cluster: charts from a folder (base/, istiod/, gateway/ or their .tgz)
  kubectl mesh install --charts ./istio-charts

  # Install with istioctl from the same profile (writes the IstioOperator, runs istioctl install)
  kubectl mesh install --engine istioctl`

// Options holds the flags and dependencies of `install`.
type Options struct {
	genericiooptions.IOStreams
	ConfigFlags *genericclioptions.ConfigFlags
	cli.WriteFlags

	Profile, Version, Revision string
	ValueFiles, Sets           []string
	Charts, Repo               string
	Engine                     string
	OperatorFile               string
	Check                      bool
	IgnoreChecks               bool
	SkipNodeProbe              bool
	InjectNamespaces           []string
	TracingSampling            float64
	Timeout                    time.Duration

	profile     *install.Profile
	overrides   install.Overrides
	settingsErr error
}

// Report is what install did.
type Report = installer.Report

// NewCmd returns the `install` command.
func NewCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, ConfigFlags: flags}
	cmd := &cobra.Command{
		Use:   "install [--profile minimal|default] [--revision R] [-f overrides.yaml] [--set chart.key=value]",
		Short: "Install Istio for production: preflight checks, a tuned profile, Helm charts waited for in order",
		Long: `install checks the cluster (Kubernetes version against the Istio release, permissions, an Istio
already there, whether the sidecars of the namespaces to inject fit on their nodes, the nodes'
CPU steal and sysctls), then installs Istio's base, istiod and (profile default) gateway charts
with Helm's SDK, each waited for until ready, with the production profile: istiod 500m/2048Mi,
sidecars 100m/128Mi requests and 2000m/1024Mi limits, access logs for failed requests only (a
mesh-wide Telemetry), 1% tracing, the stats why-slow reads, and applications held until their
sidecar is ready. Running it again upgrades what changed and nothing else.

--profile ambient installs base, istiod in ambient mode, the istio-cni node agent and ztunnel
(200m/512Mi), and checks first that istio-system admits istio-cni's privileged pods.

Overrides go under the chart they change (base, istiod, gateway, cni, ztunnel) or under operator for the
IstioOperator of --engine istioctl: -f values.yaml holding {istiod: {pilot: {...}}}, or
--set istiod.pilot.autoscaleMin=2.`,
		Example: example,
		RunE:    cli.RunE(o),
	}
	f := cmd.Flags()
	f.StringVar(&o.Profile, "profile", install.ProfileDefault, "minimal (istiod), default (istiod and an ingress gateway) or ambient (istiod in ambient mode, the istio-cni node agent and ztunnel); Istio's demo profile is not offered")
	f.StringVar(&o.Version, "version", install.DefaultVersion, "Istio release to install")
	f.StringVar(&o.Revision, "revision", "", "Install a revisioned control plane (istio.io/rev), beside the default one")
	f.StringArrayVarP(&o.ValueFiles, "values", "f", nil, "YAML overrides keyed by chart (base, istiod, gateway) or operator; repeatable")
	f.StringArrayVar(&o.Sets, "set", nil, "An override, as helm --set takes it, prefixed with the chart: istiod.pilot.autoscaleMin=2; repeatable")
	f.StringVar(&o.Charts, "charts", "", "Folder (or .tgz of one) holding base, istiod and gateway, for air-gapped clusters; default: Istio's chart repository")
	f.StringVar(&o.Repo, "repo", helm.DefaultRepo, "Helm repository of Istio's charts")
	f.StringVar(&o.Engine, "engine", installer.EngineHelm, "helm (Helm's SDK) or istioctl (writes the IstioOperator and runs istioctl install)")
	f.StringVar(&o.OperatorFile, "operator-file", "", "With --engine istioctl: where to write the IstioOperator (default "+istioctl.DefaultOperatorFile+")")
	f.BoolVar(&o.Check, "check", false, "Only run the preflight checks (exit 1 when one fails)")
	f.BoolVar(&o.IgnoreChecks, "ignore-checks", false, "Install although a preflight check failed")
	f.BoolVar(&o.SkipNodeProbe, "skip-node-probe", false, "Do not start a probe pod per node for CPU steal and sysctls")
	f.StringSliceVar(&o.InjectNamespaces, "inject-namespaces", nil, "Namespaces you will inject, counted into the sidecar capacity check")
	f.Float64Var(&o.TracingSampling, "tracing-sampling", install.DefaultTracingSampling, "Percent of requests traced")
	f.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "How long to wait for each chart's resources to be ready")
	o.AddFlags(f, cli.WriteUsage{
		DryRun:         "client prints every manifest without a cluster; server renders against it; nothing is changed",
		ForceConflicts: "Take over fields (and the Telemetry) another tool owns",
		Output:         "Output format of the report: json or yaml (default: text)",
	})
	return cmd
}

// Complete reads the value files and builds the profile, the overrides and the clients; a
// client dry run needs no cluster.
func (o *Options) Complete(args []string) error {
	if err := cli.NoArgs("install", args); err != nil {
		return err
	}
	p, err := install.NewProfile(o.Profile, o.Version)
	if err != nil {
		return cli.UsageError("%v", err)
	}
	p.Revision, p.TracingSampling = o.Revision, o.TracingSampling
	o.profile = p
	tree, err := (&values.Options{ValueFiles: o.ValueFiles, Values: o.Sets}).MergeValues(getter.All(helmcli.New()))
	if err != nil {
		return cli.UsageError("overrides: %v", err)
	}
	if o.overrides, err = install.NewOverrides(tree); err != nil {
		return cli.UsageError("%v", err)
	}
	return o.WriteFlags.Complete(o.ConfigFlags, true, "or print the manifests without a cluster: --dry-run")
}

// Validate checks the flags, the profile and the overrides.
func (o *Options) Validate() error {
	if err := o.WriteFlags.Validate(); err != nil {
		return err
	}
	if o.Engine != installer.EngineHelm && o.Engine != installer.EngineIstioctl {
		return cli.UsageError("--engine is helm or istioctl (got %q)", o.Engine)
	}
	if err := o.profile.Validate(); err != nil {
		return cli.UsageError("%v", err)
	}
	if _, _, err := o.profile.ProxyRequests(o.overrides); err != nil {
		return cli.UsageError("%v", err)
	}
	return nil
}

// Run checks, installs and reports.
func (o *Options) Run(ctx context.Context) error {
	rep, err := installer.Run(ctx, installer.Options{
		Client: o.Client, Dynamic: o.Dynamic, Mapper: o.Mapper, RESTConfig: o.RESTConfig,
		Getter: o.ConfigFlags, Kubeconfig: stringFlag(o.ConfigFlags.KubeConfig), Context: stringFlag(o.ConfigFlags.Context),
		Profile: o.profile, Overrides: o.overrides, Engine: o.Engine, Charts: o.Charts, Repo: o.Repo, OperatorFile: o.OperatorFile,
		CheckOnly: o.Check, IgnoreChecks: o.IgnoreChecks, SkipNodeProbe: o.SkipNodeProbe, InjectNamespaces: o.InjectNamespaces,
		Timeout: o.Timeout, DryRun: o.DryRun, ForceConflicts: o.ForceConflicts, Progress: o.ErrOut, Manifests: o.Out,
	})
	if errors.Is(err, istioctl.ErrNoIstioctl) {
		return &cli.ExitError{Code: cli.ExitUsage, Err: err}
	}
	if err != nil {
		return err
	}
	if o.DryRun != apply.DryRunClient || o.Check { // a client dry run's manifests are its output
		if err := cli.Print(o.Out, o.Output, rep, func(w io.Writer) error { return RenderText(w, rep, cli.ColorEnabled(o.Out)) }); err != nil {
			return err
		}
	}
	switch {
	case o.Check && check.AnyFailed(rep.Checks):
		return &cli.ExitError{Code: cli.ExitFindings}
	case rep.Stopped:
		return &cli.ExitError{Code: cli.ExitFindings, Err: errors.New("a preflight check failed: fix it (see fix: above), or rerun with --ignore-checks")}
	}
	return nil
}

func stringFlag(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// RenderText prints the checks, then what happened to each release and the Telemetry.
func RenderText(w io.Writer, r *Report, useColor bool) error {
	title := fmt.Sprintf("Istio %s, profile %s, revision %s", r.Profile.Version, r.Profile.Name, revision(r.Profile.Revision))
	if err := check.Render(w, title, r.Checks, useColor); err != nil {
		return err
	}
	for _, s := range r.Releases {
		line := fmt.Sprintf("%s: release %s in %s %s", s.Name, s.Release, s.Namespace, s.Action)
		if s.Revision > 0 {
			line += fmt.Sprintf(" (revision %d)", s.Revision)
		}
		fmt.Fprintln(w, line)
	}
	if r.Operator != "" {
		fmt.Fprintf(w, "IstioOperator written to %s and installed with istioctl\n", r.Operator)
	}
	if r.Telemetry != nil {
		fmt.Fprintf(w, "%s: access logs for failed requests only\n", r.Telemetry)
	}
	if len(r.Releases) > 0 || r.Operator != "" {
		fmt.Fprintln(w, "Next: kubectl mesh status, then kubectl mesh inject NAMESPACE.")
	}
	return nil
}

func revision(r string) string {
	if r == "" {
		return "default"
	}
	return r
}
