// Package install implements `kubectl mesh install` and `kubectl mesh uninstall`. They are built
// into the kubectl-mesh-install binary, which kubectl-mesh runs for them: Helm's SDK would add
// its start-up cost to every other kubectl mesh command.
package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	helmcli "helm.sh/helm/v4/pkg/cli"
	"helm.sh/helm/v4/pkg/cli/values"
	"helm.sh/helm/v4/pkg/getter"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mesh/kubectl-mesh/collect"
	"github.com/kubectl-mesh/kubectl-mesh/install"
	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/install/check"
	"github.com/kubectl-mesh/kubectl-mesh/install/helm"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
)

const example = `  # Check the cluster, then install Istio's production profile (istiod and an ingress gateway)
  kubectl mesh install --check --inject-namespaces bookinfo
  kubectl mesh install

  # Only istiod, as revision 1-30 beside an existing control plane, with a change of your own
  kubectl mesh install --profile minimal --revision 1-30 --set istiod.pilot.autoscaleMin=2

  # Every manifest, without changing anything (no cluster needed)
  kubectl mesh install --dry-run

  # An air-gapped cluster: charts from a folder (base/, istiod/, gateway/ or their .tgz)
  kubectl mesh install --charts ./istio-charts

  # Install with istioctl from the same profile (writes the IstioOperator, runs istioctl install)
  kubectl mesh install --engine istioctl`

// Engines.
const (
	EngineHelm     = "helm"
	EngineIstioctl = "istioctl"
)

// Options holds the flags and dependencies of `install`.
type Options struct {
	genericiooptions.IOStreams
	ConfigFlags *genericclioptions.ConfigFlags

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
	DryRunFlag                 string
	ForceConflicts             bool
	Output                     string

	dryRun     apply.DryRun
	profile    *install.Profile
	overrides  install.Overrides
	Client     kubernetes.Interface
	Dynamic    dynamic.Interface
	Mapper     meta.ResettableRESTMapper
	RESTConfig *rest.Config
}

// Report is what install did.
type Report struct {
	Profile   *install.Profile `json:"profile"`
	Engine    string           `json:"engine"`
	Checks    []check.Check    `json:"checks,omitempty"`
	Releases  []helm.Step      `json:"releases,omitempty"`
	Operator  string           `json:"istioOperatorFile,omitempty"`
	Telemetry *apply.Result    `json:"telemetry,omitempty"`
}

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

Overrides go under the chart they change (base, istiod, gateway) or under operator for the
IstioOperator of --engine istioctl: -f values.yaml holding {istiod: {pilot: {...}}}, or
--set istiod.pilot.autoscaleMin=2.`,
		Example: example,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return cli.UsageError("install takes no arguments (got %q): see --help", args[0])
			}
			if err := o.Validate(); err != nil {
				return err
			}
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Profile, "profile", install.ProfileDefault, "minimal (istiod) or default (istiod and an ingress gateway); Istio's demo profile is not offered")
	f.StringVar(&o.Version, "version", install.DefaultVersion, "Istio release to install")
	f.StringVar(&o.Revision, "revision", "", "Install a revisioned control plane (istio.io/rev), beside the default one")
	f.StringArrayVarP(&o.ValueFiles, "values", "f", nil, "YAML overrides keyed by chart (base, istiod, gateway) or operator; repeatable")
	f.StringArrayVar(&o.Sets, "set", nil, "An override, as helm --set takes it, prefixed with the chart: istiod.pilot.autoscaleMin=2; repeatable")
	f.StringVar(&o.Charts, "charts", "", "Folder (or .tgz of one) holding base, istiod and gateway, for air-gapped clusters; default: Istio's chart repository")
	f.StringVar(&o.Repo, "repo", helm.DefaultRepo, "Helm repository of Istio's charts")
	f.StringVar(&o.Engine, "engine", EngineHelm, "helm (Helm's SDK) or istioctl (writes the IstioOperator and runs istioctl install)")
	f.StringVar(&o.OperatorFile, "operator-file", "", "With --engine istioctl: where to write the IstioOperator (default istio-operator.yaml)")
	f.BoolVar(&o.Check, "check", false, "Only run the preflight checks (exit 1 when one fails)")
	f.BoolVar(&o.IgnoreChecks, "ignore-checks", false, "Install although a preflight check failed")
	f.BoolVar(&o.SkipNodeProbe, "skip-node-probe", false, "Do not start a probe pod per node for CPU steal and sysctls")
	f.StringSliceVar(&o.InjectNamespaces, "inject-namespaces", nil, "Namespaces you will inject, counted into the sidecar capacity check")
	f.Float64Var(&o.TracingSampling, "tracing-sampling", install.DefaultTracingSampling, "Percent of requests traced")
	f.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "How long to wait for each chart's resources to be ready")
	cli.AddDryRunFlag(f, &o.DryRunFlag, "client prints every manifest without a cluster; server renders against it; nothing is changed")
	f.BoolVar(&o.ForceConflicts, "force-conflicts", false, "Take over fields (and the Telemetry) another tool owns")
	f.StringVarP(&o.Output, "output", "o", "", "Output format of the report: json or yaml (default: text)")
	return cmd
}

// Validate checks the flags and builds the profile and the overrides.
func (o *Options) Validate() error {
	if err := cli.ValidateOutput(o.Output); err != nil {
		return err
	}
	d, err := cli.ParseDryRun(o.DryRunFlag)
	if err != nil {
		return err
	}
	o.dryRun = d
	if o.Engine != EngineHelm && o.Engine != EngineIstioctl {
		return cli.UsageError("--engine is helm or istioctl (got %q)", o.Engine)
	}
	p, err := install.NewProfile(o.Profile, o.Version)
	if err != nil {
		return cli.UsageError("%v", err)
	}
	p.Revision, p.TracingSampling = o.Revision, o.TracingSampling
	if err := p.Validate(); err != nil {
		return cli.UsageError("%v", err)
	}
	o.profile = p
	tree, err := (&values.Options{ValueFiles: o.ValueFiles, Values: o.Sets}).MergeValues(getter.All(helmcli.New()))
	if err != nil {
		return cli.UsageError("overrides: %v", err)
	}
	if o.overrides, err = install.NewOverrides(tree); err != nil {
		return cli.UsageError("%v", err)
	}
	if _, _, err := p.ProxyRequests(o.overrides); err != nil {
		return cli.UsageError("%v", err)
	}
	return nil
}

// Complete builds the clients; a client dry run needs none.
func (o *Options) Complete() error {
	if o.Client != nil || o.dryRun == apply.DryRunClient {
		return nil
	}
	c, mapper, err := cli.ConnectWriter(o.ConfigFlags)
	if err != nil {
		return fmt.Errorf("%w; or print the manifests without a cluster: --dry-run", err)
	}
	o.Client, o.Dynamic, o.Mapper, o.RESTConfig = c.Client, c.Dynamic, mapper, c.Config
	return nil
}

// Run checks, installs and reports.
func (o *Options) Run(ctx context.Context) error {
	rep := &Report{Profile: o.profile, Engine: o.Engine}
	pf := &install.Preflight{Client: o.Client, Dynamic: o.Dynamic, Profile: o.profile, InjectNamespaces: o.InjectNamespaces,
		ForeignCRDsOK: o.Engine == EngineIstioctl, Overrides: o.overrides}
	switch {
	case o.Client == nil:
	case o.SkipNodeProbe:
		pf.SkipNodesReason = "--skip-node-probe"
	case o.dryRun != apply.DryRunNone:
		pf.SkipNodesReason = "a dry run starts no probe pod"
	default:
		pf.Nodes = o.probeNodes
	}
	if o.dryRun == apply.DryRunClient {
		fmt.Fprintln(o.ErrOut, "client dry run: the manifests follow on stdout; the preflight checks were skipped (Kubernetes version, permissions, existing Istio, sidecar capacity, nodes): --dry-run=server or --check runs them against the cluster")
	} else {
		fmt.Fprintln(o.ErrOut, "running the preflight checks...")
	}
	rep.Checks = pf.Run(ctx)
	failed := check.AnyFailed(rep.Checks)
	if o.Check {
		if err := o.print(rep); err != nil {
			return err
		}
		if failed {
			return &cli.ExitError{Code: cli.ExitFindings}
		}
		return nil
	}
	if failed && !o.IgnoreChecks && o.dryRun != apply.DryRunClient {
		if err := o.print(rep); err != nil {
			return err
		}
		return &cli.ExitError{Code: cli.ExitFindings, Err: errors.New("a preflight check failed: fix it (see fix: above), or rerun with --ignore-checks")}
	}
	var err error
	if o.Engine == EngineIstioctl {
		err = o.runIstioctl(ctx, rep)
	} else {
		err = o.runHelm(ctx, rep)
	}
	if err != nil {
		return err
	}
	if err := o.applyTelemetry(ctx, rep); err != nil {
		return err
	}
	return o.print(rep)
}

func (o *Options) probeNodes(ctx context.Context) ([]check.Check, error) {
	reports, err := collect.ProbeNodes(ctx, collect.NodeProbeOptions{Client: o.Client, RESTConfig: o.RESTConfig, Namespace: "default", Progress: o.ErrOut})
	if err != nil {
		return nil, err
	}
	var out []check.Check
	for _, r := range reports {
		c := check.Check{Category: install.CategoryNodes, Status: check.OK, Message: r.Node + ": tuned for meshed traffic"}
		if s := r.Shortfalls(); len(s) > 0 {
			c.Status, c.Message = check.Warning, r.Node+": "+strings.Join(s, "; ")
			c.Fix = "kubectl mesh nodes --apply --dry-run shows the DaemonSet that sets the sysctls; CPU steal and slow disks need other nodes"
		}
		out = append(out, c)
	}
	return out, nil
}

func (o *Options) runHelm(ctx context.Context, rep *Report) error {
	e := &helm.Engine{Getter: o.ConfigFlags, Charts: o.Charts, Repo: o.Repo, Timeout: o.Timeout, DryRun: o.dryRun,
		ForceConflicts: o.ForceConflicts, Progress: o.ErrOut, Manifests: o.Out}
	defer e.Close()
	steps, err := e.Install(ctx, o.profile, o.overrides)
	rep.Releases = steps
	if err != nil {
		return err
	}
	if o.Mapper != nil {
		o.Mapper.Reset() // the base chart brought Istio's kinds
	}
	return nil
}

// runIstioctl writes the IstioOperator with the overrides and runs the user's istioctl on it.
func (o *Options) runIstioctl(ctx context.Context, rep *Report) error {
	op := o.profile.IstioOperator()
	spec, _, _ := unstructured.NestedMap(op.Object, "spec")
	merged, err := o.overrides.Merge(install.KeyOperator, spec)
	if err != nil {
		return err
	}
	op.Object["spec"] = merged
	b, err := yaml.Marshal(op.Object)
	if err != nil {
		return err
	}
	if o.dryRun == apply.DryRunClient {
		fmt.Fprintf(o.Out, "---\n%s", b)
		return nil
	}
	path := o.OperatorFile
	if path == "" {
		path = "istio-operator.yaml"
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("writing the IstioOperator: %w", err)
	}
	rep.Operator = path
	istioctl, err := exec.LookPath("istioctl")
	if err != nil {
		return &cli.ExitError{Code: cli.ExitUsage, Err: fmt.Errorf("istioctl is not on PATH: the IstioOperator is in %s; install istioctl %s and run istioctl install -f %s, or use --engine helm", path, o.profile.Version, path)}
	}
	args := []string{"install", "-y", "-f", path}
	if o.dryRun == apply.DryRunServer {
		args = append(args, "--dry-run")
	}
	if k := o.ConfigFlags.KubeConfig; k != nil && *k != "" {
		args = append(args, "--kubeconfig", *k)
	}
	if c := o.ConfigFlags.Context; c != nil && *c != "" {
		args = append(args, "--context", *c)
	}
	fmt.Fprintf(o.ErrOut, "running %s %s\n", istioctl, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, istioctl, args...)
	cmd.Stdout, cmd.Stderr = o.ErrOut, o.ErrOut
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("istioctl install -f %s: %w", filepath.Base(path), err)
	}
	return nil
}

func (o *Options) applyTelemetry(ctx context.Context, rep *Report) error {
	if o.dryRun == apply.DryRunServer {
		return nil // Istio's CRDs are not installed yet: the Telemetry cannot be validated
	}
	a := &apply.Applier{Dynamic: o.Dynamic, Mapper: o.Mapper, Out: o.Out, Options: apply.Options{DryRun: o.dryRun, ForceConflicts: o.ForceConflicts}}
	r, err := a.Apply(ctx, o.profile.Telemetry())
	if err != nil {
		return fmt.Errorf("mesh-wide access logs: %w", err)
	}
	rep.Telemetry = &r
	return nil
}

func (o *Options) print(rep *Report) error {
	if o.dryRun == apply.DryRunClient && !o.Check {
		return nil // the manifests are the output
	}
	if done, err := cli.PrintStructured(o.Out, o.Output, rep); done {
		return err
	}
	return RenderText(o.Out, rep, cli.ColorEnabled(o.Out))
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
