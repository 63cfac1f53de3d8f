// Package installer is the engine of `kubectl mesh install`: the preflight checks, then Helm's
// or istioctl's install of the profile, then the mesh-wide Telemetry.
package installer

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mesh/kubectl-mesh/install"
	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/install/check"
	"github.com/kubectl-mesh/kubectl-mesh/install/helm"
	"github.com/kubectl-mesh/kubectl-mesh/install/istioctl"
	"github.com/kubectl-mesh/kubectl-mesh/install/nodes"
)

// Engines.
const (
	EngineHelm     = "helm"
	EngineIstioctl = "istioctl"
)

// Options say what to install and how.
type Options struct {
	// The clients; nil for a client dry run, which prints the manifests without a cluster.
	Client     kubernetes.Interface
	Dynamic    dynamic.Interface
	Mapper     meta.ResettableRESTMapper
	RESTConfig *rest.Config
	// Getter reaches the cluster for Helm; Kubeconfig and Context are passed on to istioctl.
	Getter              genericclioptions.RESTClientGetter
	Kubeconfig, Context string

	Profile   *install.Profile
	Overrides install.Overrides
	// Engine is EngineHelm or EngineIstioctl.
	Engine       string
	Charts, Repo string
	OperatorFile string
	// CheckOnly runs the preflight checks and stops; IgnoreChecks installs although one failed.
	CheckOnly, IgnoreChecks bool
	SkipNodeProbe           bool
	InjectNamespaces        []string
	Timeout                 time.Duration
	DryRun                  apply.DryRun
	ForceConflicts          bool
	// Progress receives a line per step (stderr); Manifests the manifests of a client dry run.
	Progress, Manifests io.Writer
}

// Report is what install did.
type Report struct {
	Profile   *install.Profile `json:"profile"`
	Engine    string           `json:"engine"`
	Checks    []check.Check    `json:"checks,omitempty"`
	Releases  []helm.Step      `json:"releases,omitempty"`
	Operator  string           `json:"istioOperatorFile,omitempty"`
	Telemetry *apply.Result    `json:"telemetry,omitempty"`
	// Stopped is set when a preflight check failed and nothing was installed.
	Stopped bool `json:"-"`
}

// Run checks the cluster, then installs unless a check failed (or only the checks were asked
// for), then applies the mesh-wide Telemetry. Running it again upgrades what changed.
func Run(ctx context.Context, o Options) (*Report, error) {
	rep := &Report{Profile: o.Profile, Engine: o.Engine}
	if o.DryRun == apply.DryRunClient {
		fmt.Fprintln(o.Progress, "client dry run: the manifests follow on stdout; the preflight checks were skipped (Kubernetes version, permissions, existing Istio, sidecar capacity, nodes): --dry-run=server or --check runs them against the cluster")
	} else {
		fmt.Fprintln(o.Progress, "running the preflight checks...")
	}
	rep.Checks = preflight(o).Run(ctx)
	if o.CheckOnly {
		return rep, nil
	}
	if check.AnyFailed(rep.Checks) && !o.IgnoreChecks && o.DryRun != apply.DryRunClient {
		rep.Stopped = true
		return rep, nil
	}
	if err := installProfile(ctx, o, rep); err != nil {
		return rep, err
	}
	if o.DryRun == apply.DryRunServer {
		return rep, nil // Istio's CRDs are not installed yet: the Telemetry cannot be validated
	}
	a := &apply.Applier{Dynamic: o.Dynamic, Mapper: o.Mapper, Out: o.Manifests, Options: apply.Options{DryRun: o.DryRun, ForceConflicts: o.ForceConflicts}}
	r, err := a.Apply(ctx, o.Profile.Telemetry())
	if err != nil {
		return rep, fmt.Errorf("mesh-wide access logs: %w", err)
	}
	rep.Telemetry = &r
	return rep, nil
}

func preflight(o Options) *install.Preflight {
	pf := &install.Preflight{Client: o.Client, Dynamic: o.Dynamic, Profile: o.Profile, InjectNamespaces: o.InjectNamespaces,
		ForeignCRDsOK: o.Engine == EngineIstioctl, Overrides: o.Overrides}
	switch {
	case o.Client == nil:
	case o.SkipNodeProbe:
		pf.SkipNodesReason = "--skip-node-probe"
	case o.DryRun != apply.DryRunNone:
		pf.SkipNodesReason = "a dry run starts no probe pod"
	default:
		pf.Nodes = func(ctx context.Context) ([]check.Check, error) { return probeNodes(ctx, o) }
	}
	return pf
}

// probeNodes runs kubectl mesh nodes' probe as a preflight check per node.
func probeNodes(ctx context.Context, o Options) ([]check.Check, error) {
	reports, err := nodes.Probe(ctx, nodes.ProbeOptions{Client: o.Client, RESTConfig: o.RESTConfig, Namespace: "default", Progress: o.Progress})
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

func installProfile(ctx context.Context, o Options, rep *Report) error {
	if o.Engine == EngineIstioctl {
		e := &istioctl.Engine{Kubeconfig: o.Kubeconfig, Context: o.Context, OperatorFile: o.OperatorFile, DryRun: o.DryRun, Progress: o.Progress, Manifests: o.Manifests}
		path, err := e.Install(ctx, o.Profile, o.Overrides)
		if o.DryRun != apply.DryRunClient {
			rep.Operator = path
		}
		return err
	}
	e := &helm.Engine{Getter: o.Getter, Charts: o.Charts, Repo: o.Repo, Timeout: o.Timeout, DryRun: o.DryRun,
		ForceConflicts: o.ForceConflicts, Progress: o.Progress, Manifests: o.Manifests}
	defer e.Close()
	steps, err := e.Install(ctx, o.Profile, o.Overrides)
	rep.Releases = steps
	if err != nil {
		return err
	}
	if o.Mapper != nil {
		o.Mapper.Reset() // the base chart brought Istio's kinds
	}
	return nil
}
