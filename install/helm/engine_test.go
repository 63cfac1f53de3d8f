package helm

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/kube"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/kubectl-mesh/kubectl-mesh/install"
	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/meshtest"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

// webhooks are the values that point the real istiod and base charts' webhooks at the test's
// injector, which admits everything it is asked to validate: kwok runs no istiod to serve them,
// and an upgrade makes the validation webhooks fail closed.
func webhooks(t testing.TB, extra map[string]any) install.Overrides {
	t.Helper()
	inj := meshtest.ServeInjector(t)
	ca := base64.StdEncoding.EncodeToString(inj.CABundle)
	validation := map[string]any{"validationURL": inj.ValidationURL, "validationCABundle": ca}
	istiod := map[string]any{"istiodRemote": map[string]any{"injectionURL": inj.URL + "/default", "injectionCABundle": ca}, "base": validation}
	for k, v := range extra {
		istiod[k] = v
	}
	ov, err := install.NewOverrides(map[string]any{"istiod": istiod, "base": map[string]any{"base": validation}})
	if err != nil {
		t.Fatal(err)
	}
	return ov
}

// progressCheck calls check when a progress line starts with prefix: the state of the cluster
// between two charts.
type progressCheck struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	prefix string
	check  func()
	done   bool
}

func (p *progressCheck) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.done && strings.HasPrefix(string(b), p.prefix) {
		p.done = true
		p.check()
	}
	return p.buf.Write(b)
}

func actions(steps []Step) string {
	var out []string
	for _, s := range steps {
		out = append(out, s.Name+"="+s.Action)
	}
	return strings.Join(out, " ")
}

// TestInstallUpgradeUninstall installs Istio's real 1.30.3 charts on the real control plane, in order and waited for, then shows that a second install changes nothing, a changed
// value upgrades only its chart, a release someone else installed is not taken over, and
// uninstall removes only what install made, keeping the CRDs while others' Istio objects live.
func TestInstallUpgradeUninstall(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &c.Kubeconfig
	charts := meshtest.IstioCharts(t)
	ov := webhooks(t, nil)
	p, err := install.NewProfile(install.ProfileDefault, meshtest.IstioVersion)
	if err != nil {
		t.Fatal(err)
	}
	deploy := func(ns, name string) *appsv1.Deployment {
		d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("deployment %s/%s: %v", ns, name, err)
		}
		return d
	}
	hpaMin := func(ns, name string) int32 {
		h, err := c.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || h.Spec.MinReplicas == nil {
			t.Fatalf("autoscaler %s/%s: %v", ns, name, err)
		}
		return *h.Spec.MinReplicas
	}
	// When the gateway chart starts, the CRDs and istiod must be there and istiod ready.
	between := &progressCheck{prefix: "gateway (", check: func() {
		if _, err := c.Dynamic.Resource(crdGVR).Get(ctx, "virtualservices.networking.istio.io", metav1.GetOptions{}); err != nil {
			t.Errorf("base's CRDs missing when the gateway starts: %v", err)
		}
		if d := deploy("istio-system", "istiod"); d.Status.AvailableReplicas < 1 {
			t.Errorf("the gateway started before istiod was ready: %+v", d.Status)
		}
	}}
	e := &Engine{Getter: flags, Charts: charts, Timeout: 2 * time.Minute, Progress: between}
	steps, err := e.Install(ctx, p, ov)
	if err != nil {
		t.Fatalf("install: %v\n%s", err, between.buf.String())
	}
	if got := actions(steps); got != "base=installed istiod=installed gateway=installed" {
		t.Fatalf("steps %s", got)
	}
	if !between.done {
		t.Fatalf("no progress line for the gateway:\n%s", between.buf.String())
	}
	istiod := deploy("istio-system", "istiod")
	if cpu := istiod.Spec.Template.Spec.Containers[0].Resources.Requests.Cpu().String(); cpu != "500m" {
		t.Errorf("istiod requests %s CPU, want the profile's 500m", cpu)
	}
	// The gateway's replicas are its HorizontalPodAutoscaler's (at least 2, the profile's), which
	// scales it once metrics come: kwok serves none, so only the autoscaler's bound shows here.
	if gw := deploy("istio-ingress", "istio-ingressgateway"); gw.Status.AvailableReplicas < 1 {
		t.Errorf("the gateway is not ready: %+v", gw.Status)
	}
	if min := hpaMin("istio-ingress", "istio-ingressgateway"); min != 2 {
		t.Errorf("the gateway's autoscaler keeps at least %d replicas, want the profile's 2", min)
	}
	secrets := func() int {
		l, err := c.Client.CoreV1().Secrets("").List(ctx, metav1.ListOptions{LabelSelector: "owner=helm"})
		if err != nil {
			t.Fatal(err)
		}
		return len(l.Items)
	}
	releases := secrets()

	// A second install is a no-op: no new release revision, no object touched.
	steps, err = e.Install(ctx, p, ov)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(steps); got != "base=unchanged istiod=unchanged gateway=unchanged" {
		t.Errorf("second install: %s", got)
	}
	if n := secrets(); n != releases {
		t.Errorf("a second install stored %d release revisions, want none", n-releases)
	}
	if rv := deploy("istio-system", "istiod").ResourceVersion; rv != istiod.ResourceVersion {
		t.Errorf("istiod changed by a second install: %s -> %s", istiod.ResourceVersion, rv)
	}

	// A changed value upgrades its chart alone.
	steps, err = e.Install(ctx, p, webhooksAgain(t, ov, map[string]any{"pilot": map[string]any{"autoscaleMin": 2}}))
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(steps); got != "base=unchanged istiod=upgraded gateway=unchanged" {
		t.Errorf("install with a changed value: %s", got)
	}
	if min := hpaMin("istio-system", "istiod"); min != 2 {
		t.Errorf("istiod's autoscaler after the upgrade keeps at least %d replicas, want 2", min)
	}

	// A dry run renders without changing anything.
	var manifests bytes.Buffer
	dry := &Engine{Getter: flags, Charts: charts, DryRun: apply.DryRunServer, Manifests: &manifests}
	steps, err = dry.Install(ctx, p, ov)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(steps); got != "base=unchanged istiod=would upgrade gateway=unchanged" {
		t.Errorf("server dry run back to one replica: %s", got)
	}
	if !strings.Contains(manifests.String(), "minReplicas: 1") {
		t.Errorf("dry run manifests lack the change:\n%.600s", manifests.String())
	}
	if hpaMin("istio-system", "istiod") != 2 {
		t.Error("a dry run changed istiod")
	}

	// A release someone else installed stops the install before anything changes.
	other, _ := install.NewProfile(install.ProfileMinimal, meshtest.IstioVersion)
	other.Namespace, other.Revision = "istio-other", "other" // apart from the first: its webhook and cluster objects are its own
	if _, err := (&Engine{Getter: flags, Charts: charts}).installForeign(ctx, other, ov["istiod"]); err != nil {
		var why []string
		if evs, _ := c.Client.CoreV1().Events(other.Namespace).List(ctx, metav1.ListOptions{}); evs != nil {
			for _, ev := range evs.Items {
				why = append(why, ev.InvolvedObject.Name+": "+ev.Reason+": "+ev.Message)
			}
		}
		t.Fatalf("%v\nevents:\n%s", err, strings.Join(why, "\n"))
	}
	if _, err := (&Engine{Getter: flags, Charts: charts}).Install(ctx, other, nil); err == nil || !strings.Contains(err.Error(), "was not installed by kubectl-mesh") {
		t.Errorf("install over another tool's release: %v", err)
	}

	// Uninstall keeps the CRDs while Istio objects it did not make exist.
	vs := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}`
	if err := c.Apply(ctx, vs); err != nil {
		t.Fatal(err)
	}
	guard := BaseGuard{Keep: func(ctx context.Context) (string, error) {
		others, err := ForeignIstioObjects(ctx, c.Dynamic)
		if len(others) > 0 {
			return "its CRDs hold " + strings.Join(others, ", "), err
		}
		return "", err
	}}
	steps, err = e.Uninstall(ctx, p, guard)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(steps); got != "gateway=uninstalled istiod=uninstalled base=kept" || !strings.Contains(steps[2].Note, "VirtualService default/reviews") {
		t.Errorf("uninstall with a user's VirtualService: %s %q", got, steps[2].Note)
	}
	if _, err := c.Client.AppsV1().Deployments("istio-system").Get(ctx, "istiod", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("istiod after uninstall: %v", err)
	}
	if _, err := c.Dynamic.Resource(vsGVR).Namespace("default").Get(ctx, "reviews", metav1.GetOptions{}); err != nil {
		t.Errorf("the user's VirtualService is gone: %v", err)
	}
	if _, err := c.Client.AppsV1().Deployments("istio-other").Get(ctx, "istiod-other", metav1.GetOptions{}); err != nil {
		t.Errorf("the other tool's istiod is gone: %v", err)
	}
	// A revision's uninstall leaves the shared base release.
	rev := *p
	rev.Revision = "1-30"
	if steps, err := e.Uninstall(ctx, &rev, BaseGuard{}); err != nil || steps[len(steps)-1].Action == "uninstalled" {
		t.Errorf("uninstall of a revision: %s, %v", actions(steps), err)
	}
	steps, err = e.Uninstall(ctx, p, BaseGuard{})
	if err != nil || actions(steps) != "gateway=not installed istiod=not installed base=uninstalled" {
		t.Errorf("uninstall --purge-crds: %s, %v", actions(steps), err)
	}
}

var vsGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}

// installForeign installs the istiod chart of p as another tool would: a release without
// kubectl-mesh's label.
func (e *Engine) installForeign(ctx context.Context, p *install.Profile, values map[string]any) (*releasev1.Release, error) {
	cfg, err := e.configuration(p.Namespace)
	if err != nil {
		return nil, err
	}
	ch, err := e.load(install.ChartIstiod, p.Version)
	if err != nil {
		return nil, err
	}
	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace, in.CreateNamespace = p.ReleaseName(install.ChartIstiod), p.Namespace, true
	// Not waited for: the release only has to be there. (On the test control plane the pods of
	// Istio's istiod chart as a second revision in a second namespace were refused for want of
	// the ServiceAccount istiod-other; why the release lacks it was not looked into.)
	in.WaitStrategy, in.Timeout = kube.HookOnlyStrategy, time.Minute
	in.ServerSideApply = true
	vals := map[string]any{"revision": p.Revision}
	for k, v := range values {
		vals[k] = v
	}
	r, err := in.RunWithContext(ctx, ch, vals)
	if err != nil {
		return nil, err
	}
	return r.(*releasev1.Release), nil
}

// TestClientDryRunNeedsNoCluster renders every chart with a kubeconfig that points nowhere.
func TestClientDryRunNeedsNoCluster(t *testing.T) {
	server := "https://127.0.0.1:1" // nothing listens there
	flags := genericclioptions.NewConfigFlags(false)
	flags.APIServer = &server
	var manifests bytes.Buffer
	e := &Engine{Getter: flags, Charts: meshtest.IstioCharts(t), DryRun: apply.DryRunClient, Manifests: &manifests}
	p, _ := install.NewProfile(install.ProfileDefault, meshtest.IstioVersion)
	p.Revision = "1-30"
	steps, err := e.Install(context.Background(), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(steps); got != "base=would install istiod=would install gateway=would install" {
		t.Errorf("steps %s", got)
	}
	for _, want := range []string{"kind: CustomResourceDefinition", "name: istiod-1-30", "cpu: 500m", "kind: HorizontalPodAutoscaler", "minReplicas: 2", "proxyStatsMatcher"} {
		if !strings.Contains(manifests.String(), want) {
			t.Errorf("manifests lack %q", want)
		}
	}
}

// TestChartsFromArchive loads the charts from one .tgz of the charts folder, as an air-gapped
// user copies them: --charts FILE.tgz.
func TestChartsFromArchive(t *testing.T) {
	dir := meshtest.IstioCharts(t)
	archive := filepath.Join(t.TempDir(), "istio-charts.tgz")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	err = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: "istio-charts/" + filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(b))}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []io.Closer{tw, gz, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	server := "https://127.0.0.1:1"
	flags := genericclioptions.NewConfigFlags(false)
	flags.APIServer = &server
	var manifests bytes.Buffer
	p, _ := install.NewProfile(install.ProfileDefault, "")
	e := &Engine{Getter: flags, Charts: archive, DryRun: apply.DryRunClient, Manifests: &manifests}
	steps, err := e.Install(context.Background(), p, nil)
	if err != nil || actions(steps) != "base=would install istiod=would install gateway=would install" {
		t.Fatalf("charts from %s: %v %s", archive, err, actions(steps))
	}
	unpacked := e.unpacked
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(unpacked); !os.IsNotExist(err) {
		t.Errorf("the unpacked charts are left in %s", unpacked)
	}
	if _, err := (&Engine{Getter: flags, Charts: filepath.Join(t.TempDir(), "none.tgz"), DryRun: apply.DryRunClient}).Install(context.Background(), p, nil); err == nil || !strings.Contains(err.Error(), "--charts") {
		t.Errorf("a missing archive: %v", err)
	}
}

// webhooksAgain is ov (the webhooks' values, whose URLs must not change between installs) with
// more istiod values.
func webhooksAgain(t testing.TB, ov install.Overrides, istiod map[string]any) install.Overrides {
	t.Helper()
	merged, err := ov.Merge("istiod", istiod)
	if err != nil {
		t.Fatal(err)
	}
	out, err := install.NewOverrides(map[string]any{"istiod": merged, "base": ov["base"]})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
