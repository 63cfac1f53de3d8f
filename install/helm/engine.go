// Package helm installs the profile's charts with Helm's Go SDK: in order, each release waited
// for until its resources are ready (kstatus), an upgrade when the release exists, and nothing
// at all when the upgrade would not change what is deployed. Releases carry the label
// app.kubernetes.io/managed-by=kubectl-mesh, and only those are upgraded or uninstalled.
package helm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"helm.sh/helm/v4/pkg/action"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	helmcli "helm.sh/helm/v4/pkg/cli"
	"helm.sh/helm/v4/pkg/kube"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/kubectl-mesh/kubectl-mesh/install"
	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
)

// DefaultRepo is Istio's Helm chart repository.
const DefaultRepo = "https://istio-release.storage.googleapis.com/charts"

// Engine installs and uninstalls the profile's charts.
type Engine struct {
	// Getter reaches the cluster (the kubeconfig flags).
	Getter genericclioptions.RESTClientGetter
	// Charts is a folder holding base, istiod and gateway (as folders or NAME-VERSION.tgz
	// archives) or one archive of such a folder, for air-gapped clusters; "" downloads
	// them from Repo.
	Charts string
	Repo   string
	// Timeout bounds each release's wait for readiness.
	Timeout time.Duration
	DryRun  apply.DryRun
	// ForceConflicts takes over fields another manager owns during server-side apply.
	ForceConflicts bool
	// Progress receives a line per step (stderr).
	Progress io.Writer
	// Manifests receives the rendered manifests of a dry run.
	Manifests io.Writer
	// Now is the clock of the progress figures.
	Now func() time.Time

	// unpacked is the temporary folder a --charts archive was unpacked into.
	unpacked string
}

// Close removes what the engine unpacked.
func (e *Engine) Close() error {
	if e.unpacked == "" {
		return nil
	}
	return os.RemoveAll(e.unpacked)
}

// Step is what happened to one release.
type Step struct {
	install.Chart
	// Action is "installed", "upgraded", "unchanged", "uninstalled", "kept", or a dry run's
	// "would install" / "would upgrade".
	Action   string  `json:"action"`
	Revision int     `json:"revision,omitempty"`
	Seconds  float64 `json:"seconds,omitempty"`
	Note     string  `json:"note,omitempty"`
}

func (e *Engine) progress(format string, a ...any) {
	if e.Progress != nil {
		fmt.Fprintf(e.Progress, format+"\n", a...)
	}
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// configuration is Helm's action configuration for one namespace, storing releases as Secrets
// as the helm command does; Helm's own logs are dropped (steps are reported here).
func (e *Engine) configuration(namespace string) (*action.Configuration, error) {
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.NewTextHandler(io.Discard, nil)))
	if err := cfg.Init(e.Getter, namespace, "secret"); err != nil {
		return nil, fmt.Errorf("helm in namespace %s: %w", namespace, err)
	}
	return cfg, nil
}

// Install installs or upgrades every chart of the profile, in order, each waited for, with its
// values (the profile's, then the overrides). A release that exists and was not installed by
// kubectl-mesh stops the install before anything changes.
func (e *Engine) Install(ctx context.Context, p *install.Profile, ov install.Overrides) ([]Step, error) {
	charts := p.Charts()
	loaded := make([]*chartv2.Chart, len(charts))
	values := make([]map[string]any, len(charts))
	for i, c := range charts {
		ch, err := e.load(c.Name, p.Version)
		if err != nil {
			return nil, err
		}
		v, err := p.HelmValues(c.Name)
		if err != nil {
			return nil, err
		}
		if values[i], err = ov.Merge(c.Name, v); err != nil {
			return nil, err
		}
		loaded[i] = ch
	}
	if e.DryRun != apply.DryRunClient {
		// Refuse before changing anything: every release must be absent or ours.
		for _, c := range charts {
			if _, err := e.deployed(c); err != nil {
				return nil, err
			}
		}
	}
	var steps []Step
	for i, c := range charts {
		e.progress("%s (release %s in %s, %d of %d)...", c.Name, c.Release, c.Namespace, i+1, len(charts))
		st, err := e.installOne(ctx, c, loaded[i], values[i])
		if err != nil {
			return steps, err
		}
		steps = append(steps, st)
		e.progress("  %s%s", st.Action, stepFigures(st))
	}
	return steps, nil
}

func stepFigures(s Step) string {
	var parts []string
	if s.Revision > 0 {
		parts = append(parts, fmt.Sprintf("revision %d", s.Revision))
	}
	if s.Seconds > 0 {
		parts = append(parts, fmt.Sprintf("ready after %.1fs", s.Seconds))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// deployed returns the chart's deployed release, nil when there is none, and an error for a
// release kubectl-mesh did not install.
func (e *Engine) deployed(c install.Chart) (*releasev1.Release, error) {
	cfg, err := e.configuration(c.Namespace)
	if err != nil {
		return nil, err
	}
	r, err := cfg.Releases.Deployed(c.Release)
	if errors.Is(err, driver.ErrReleaseNotFound) || err != nil && strings.Contains(err.Error(), "has no deployed releases") {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading Helm release %s in %s: %w", c.Release, c.Namespace, err)
	}
	rel, ok := r.(*releasev1.Release)
	if !ok {
		return nil, fmt.Errorf("Helm release %s in %s is of an unknown kind %T", c.Release, c.Namespace, r)
	}
	if rel.Labels[apply.ManagedByLabel] != apply.ManagedBy {
		return nil, fmt.Errorf("Helm release %s in %s (chart %s) exists and was not installed by kubectl-mesh: kubectl-mesh does not take it over; keep upgrading it with helm (kubectl mesh status, inject, mtls and canary work on it)",
			c.Release, c.Namespace, rel.Chart.Metadata.Name+"-"+rel.Chart.Metadata.Version)
	}
	return rel, nil
}

func (e *Engine) installOne(ctx context.Context, c install.Chart, ch *chartv2.Chart, vals map[string]any) (Step, error) {
	st := Step{Chart: c}
	cfg, err := e.configuration(c.Namespace)
	if err != nil {
		return st, err
	}
	var current *releasev1.Release
	if e.DryRun != apply.DryRunClient {
		if current, err = e.deployed(c); err != nil {
			return st, err
		}
	}
	labels := map[string]string{apply.ManagedByLabel: apply.ManagedBy}
	begin := e.now()
	if current == nil {
		in := action.NewInstall(cfg)
		in.ReleaseName, in.Namespace, in.Labels = c.Release, c.Namespace, labels
		in.CreateNamespace = true
		// A first install that fails (a timeout waiting for istiod, a refused object) is
		// uninstalled again rather than left as a failed release that blocks the next try.
		in.RollbackOnFailure = e.DryRun == apply.DryRunNone
		in.WaitStrategy, in.Timeout = kube.StatusWatcherStrategy, e.timeout()
		in.ServerSideApply, in.ForceConflicts = true, e.ForceConflicts
		in.DryRunStrategy = dryRun(e.DryRun)
		if e.DryRun == apply.DryRunClient {
			in.Replace = true // render as helm template does, without asking the cluster
		}
		r, err := in.RunWithContext(ctx, ch, vals)
		if err != nil {
			return st, fmt.Errorf("installing %s (release %s in %s): %w", c.Name, c.Release, c.Namespace, err)
		}
		rel := r.(*releasev1.Release)
		if e.DryRun != apply.DryRunNone {
			e.writeManifest(rel)
			st.Action = "would install"
			return st, nil
		}
		st.Action, st.Revision, st.Seconds = "installed", rel.Version, e.now().Sub(begin).Seconds()
		return st, nil
	}

	up := action.NewUpgrade(cfg)
	up.Namespace, up.Labels = c.Namespace, labels
	up.WaitStrategy, up.Timeout = kube.StatusWatcherStrategy, e.timeout()
	up.ServerSideApply, up.ForceConflicts = "true", e.ForceConflicts
	up.MaxHistory = 10
	// Render the upgrade first: when it deploys what is deployed, there is nothing to do (a
	// real upgrade would add a release revision and touch every object).
	up.DryRunStrategy = action.DryRunClient
	r, err := up.RunWithContext(ctx, c.Release, ch, vals)
	if err != nil {
		return st, fmt.Errorf("rendering the upgrade of %s (release %s in %s): %w", c.Name, c.Release, c.Namespace, err)
	}
	next := r.(*releasev1.Release)
	if next.Manifest == current.Manifest && next.Chart.Metadata.Version == current.Chart.Metadata.Version {
		st.Action, st.Revision = "unchanged", current.Version
		return st, nil
	}
	if e.DryRun != apply.DryRunNone {
		e.writeManifest(next)
		st.Action = "would upgrade"
		return st, nil
	}
	up.DryRunStrategy = action.DryRunNone
	r, err = up.RunWithContext(ctx, c.Release, ch, vals)
	if err != nil {
		return st, fmt.Errorf("upgrading %s (release %s in %s): %w", c.Name, c.Release, c.Namespace, err)
	}
	rel := r.(*releasev1.Release)
	st.Action, st.Revision, st.Seconds = "upgraded", rel.Version, e.now().Sub(begin).Seconds()
	return st, nil
}

func (e *Engine) writeManifest(r *releasev1.Release) {
	if e.Manifests != nil {
		fmt.Fprintf(e.Manifests, "# Helm release %s in %s (chart %s-%s)\n%s\n", r.Name, r.Namespace, r.Chart.Metadata.Name, r.Chart.Metadata.Version, strings.TrimSpace(r.Manifest))
	}
}

func (e *Engine) timeout() time.Duration {
	if e.Timeout > 0 {
		return e.Timeout
	}
	return 5 * time.Minute
}

func dryRun(d apply.DryRun) action.DryRunStrategy {
	switch d {
	case apply.DryRunClient:
		return action.DryRunClient
	case apply.DryRunServer:
		return action.DryRunServer
	}
	return action.DryRunNone
}

// BaseGuard decides whether the base release, which holds Istio's CRDs (their deletion deletes
// every Istio object in the cluster), may go: Keep returns why not, "" when it may; Before runs
// just before it goes (the mesh-wide Telemetry is removed there).
type BaseGuard struct {
	Keep   func(context.Context) (string, error)
	Before func(context.Context) error
}

// Uninstall removes the profile's releases that kubectl-mesh installed, in reverse order. The
// base release is shared by every revision: a revision's uninstall leaves it, and so does one
// where a release before it was kept or the guard says so.
func (e *Engine) Uninstall(ctx context.Context, p *install.Profile, guard BaseGuard) ([]Step, error) {
	charts := p.Charts()
	var steps []Step
	kept := false
	for i := len(charts) - 1; i >= 0; i-- {
		c := charts[i]
		st := Step{Chart: c}
		rel, err := e.deployed(c)
		if err != nil {
			st.Action, st.Note, kept = "kept", err.Error(), true
			steps = append(steps, st)
			continue
		}
		if rel == nil {
			st.Action = "not installed"
			steps = append(steps, st)
			continue
		}
		if c.Name == install.ChartBase {
			reason := ""
			switch {
			case p.Revision != "":
				reason = "Istio's CRDs are shared by every revision: uninstall the default revision to remove them"
			case kept:
				reason = "a release above was kept, and it needs Istio's CRDs"
			case guard.Keep != nil:
				if reason, err = guard.Keep(ctx); err != nil {
					return steps, err
				}
			}
			if reason != "" {
				st.Action, st.Note = "kept", reason
				steps = append(steps, st)
				continue
			}
		}
		if e.DryRun != apply.DryRunNone {
			st.Action = "would uninstall"
			steps = append(steps, st)
			continue
		}
		if c.Name == install.ChartBase && guard.Before != nil {
			if err := guard.Before(ctx); err != nil {
				return steps, err
			}
		}
		cfg, err := e.configuration(c.Namespace)
		if err != nil {
			return steps, err
		}
		un := action.NewUninstall(cfg)
		un.WaitStrategy, un.Timeout = kube.StatusWatcherStrategy, e.timeout()
		e.progress("uninstalling %s (release %s in %s)...", c.Name, c.Release, c.Namespace)
		if _, err := un.Run(c.Release); err != nil {
			return steps, fmt.Errorf("uninstalling %s: %w", c.Release, err)
		}
		st.Action = "uninstalled"
		steps = append(steps, st)
	}
	return steps, nil
}

func first(ss []string, n int) []string {
	if len(ss) <= n {
		return ss
	}
	return append(ss[:n:n], fmt.Sprintf("and %d more", len(ss)-n))
}

// load finds a chart: in the Charts folder (NAME/ or NAME-VERSION.tgz), in an archive of such
// a folder, or in the repository at the profile's version.
func (e *Engine) load(name, version string) (*chartv2.Chart, error) {
	if e.Charts == "" {
		repo := e.Repo
		if repo == "" {
			repo = DefaultRepo
		}
		opts := action.ChartPathOptions{RepoURL: repo, Version: version}
		path, err := opts.LocateChart(name, helmcli.New())
		if err != nil {
			return nil, fmt.Errorf("chart %s %s from %s: %w; for an air-gapped cluster, download Istio's charts and pass --charts DIR", name, version, repo, err)
		}
		return loadChart(path, name)
	}
	st, err := os.Stat(e.Charts)
	if err != nil {
		return nil, fmt.Errorf("--charts: %w", err)
	}
	if !st.IsDir() {
		root, dir, err := unpackCharts(e.Charts)
		if err != nil {
			return nil, err
		}
		e.Charts, e.unpacked = dir, root
	}
	for _, p := range []string{filepath.Join(e.Charts, name), filepath.Join(e.Charts, name+"-"+version+".tgz")} {
		if _, err := os.Stat(p); err == nil {
			return loadChart(p, name)
		}
	}
	matches, _ := filepath.Glob(filepath.Join(e.Charts, name+"-*.tgz"))
	if len(matches) == 1 {
		return loadChart(matches[0], name)
	}
	return nil, fmt.Errorf("--charts %s has no chart %s (a folder %s/ or an archive %s-%s.tgz)", e.Charts, name, name, name, version)
}

func loadChart(path, name string) (*chartv2.Chart, error) {
	ch, err := loader.Load(path)
	if err != nil {
		return nil, fmt.Errorf("chart %s at %s: %w", name, path, err)
	}
	if ch.Metadata.Name != name {
		return nil, fmt.Errorf("%s holds chart %s, not %s", path, ch.Metadata.Name, name)
	}
	return ch, nil
}
