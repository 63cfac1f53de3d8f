package install

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mesh/kubectl-mesh/install/check"
	"github.com/kubectl-mesh/kubectl-mesh/install/status"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/meshtest"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

// TestInstallAmbientOnIstiosCharts installs the ambient profile from Istio's real 1.30.3
// charts on the real control plane, kwok running istiod's pods and the istio-cni and ztunnel
// DaemonSets' on its node: base, istiod in ambient mode, istio-cni and ztunnel, each waited
// for; status then reports the ambient data plane; uninstall removes the four releases.
func TestInstallAmbientOnIstiosCharts(t *testing.T) {
	charts := meshtest.IstioCharts(t)
	c := testcluster.Start(t, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kc := "--kubeconfig=" + c.Kubeconfig
	out, stderr, err := runRoot(ctx, kc, "--profile", "ambient", "--version", "1.30.3", "--charts", charts, "--skip-node-probe", "--timeout", "2m", "-o", "json")
	if err != nil {
		t.Fatalf("install: %v\n%s", err, stderr)
	}
	r := report(t, out)
	var releases []string
	for _, s := range r.Releases {
		releases = append(releases, s.Name+" "+s.Action)
	}
	if check.AnyFailed(r.Checks) || strings.Join(releases, ", ") != "base installed, istiod installed, cni installed, ztunnel installed" {
		t.Fatalf("install: releases %v, checks %+v\nstderr:\n%s", releases, r.Checks, stderr)
	}
	for _, ds := range []string{"istio-cni-node", "ztunnel"} {
		d, err := c.Client.AppsV1().DaemonSets("istio-system").Get(ctx, ds, metav1.GetOptions{})
		if err != nil || d.Status.NumberReady < 1 {
			t.Errorf("DaemonSet %s: %v, status %+v", ds, err, d.Status)
		}
	}
	istiod, err := c.Client.AppsV1().Deployments("istio-system").Get(ctx, "istiod", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if env := istiod.Spec.Template.Spec.Containers[0].Env; !hasEnv(env, "PILOT_ENABLE_AMBIENT", "true") {
		t.Errorf("istiod is not in ambient mode: %+v", env)
	}

	// status reads the ambient data plane the charts made.
	var ambient []string
	for _, ck := range (&status.Status{Client: c.Client, Dynamic: c.Dynamic}).Run(ctx) {
		if ck.Category == status.CategoryAmbient {
			ambient = append(ambient, string(ck.Status)+" "+ck.Message)
		}
	}
	if got := strings.Join(ambient, "\n"); !strings.Contains(got, "ok ztunnel istio-system/ztunnel: ready on 1 of 1 nodes") || !strings.Contains(got, "ok the istio-cni node agent istio-system/istio-cni-node: ready on 1 of 1 nodes") {
		t.Errorf("status of the ambient data plane:\n%s", got)
	}

	out, _, err = runRoot(ctx, "uninstall", kc, "--profile", "ambient", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var un struct {
		Releases []struct{ Chart, Action string } `json:"releases"`
	}
	if err := json.Unmarshal([]byte(out), &un); err != nil || len(un.Releases) != 4 {
		t.Fatalf("uninstall: %v\n%s", err, out)
	}
}

func hasEnv(env []corev1.EnvVar, name, value string) bool {
	for _, e := range env {
		if e.Name == name && e.Value == value {
			return true
		}
	}
	return false
}
