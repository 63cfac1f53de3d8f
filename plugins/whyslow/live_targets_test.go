package whyslow

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/adminreplay"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

// TestLiveTargets resolves the targets kubectl users name (svc/NAME, deploy/NAME, a bare pod
// name, -l, -A) through the real API server and checks each sweeps exactly the pods it names;
// the Deployment's pods are made by the controller manager and run by kwok. Then a user who
// may read pods but not port-forward sweeps them: the pods are of unknown health, not healthy,
// and the refusal is said once.
func TestLiveTargets(t *testing.T) {
	// Pods without a replay of their own (the Deployment's, the other namespace's) reach this one.
	h, err := adminreplay.New(filepath.Join(incidents, "healthy"))
	if err != nil {
		t.Fatal(err)
	}
	fallback := httptest.NewServer(h)
	t.Cleanup(fallback.Close)
	reviews := map[string]string{"app": "reviews"}
	c := startMesh(t, "shop", []meshedPod{
		{Name: "reviews-0", Incident: "healthy", Labels: reviews},
		{Name: "reviews-1", Incident: "healthy", Labels: reviews},
		{Name: "cart-0", Incident: "healthy", Labels: map[string]string{"app": "cart"}},
	}, testcluster.PortForwardRule("", "fallback", 15000, strings.TrimPrefix(fallback.URL, "http://")))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	meshedSpec := corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app"}, {Name: "istio-proxy", Image: "example.invalid/proxyv2"}}}
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "reviews-9", Namespace: "other", Labels: reviews}, Spec: *meshedSpec.DeepCopy()}
	other.Spec.NodeName = c.Nodes[0]
	if _, err := c.Client.CoreV1().Pods("other").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop"}, Spec: corev1.ServiceSpec{
		Selector: reviews, Ports: []corev1.ServicePort{{Name: "http", Port: 9080, TargetPort: intstr.FromInt32(9080)}}}}
	if _, err := c.Client.CoreV1().Services("shop").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	replicas := int32(2)
	ratings := map[string]string{"app": "ratings"}
	deploy := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "ratings", Namespace: "shop"}, Spec: appsv1.DeploymentSpec{
		Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: ratings},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: ratings}, Spec: meshedSpec},
	}}
	if _, err := c.Client.AppsV1().Deployments("shop").Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var ratingsPods []string
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := c.Client.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{LabelSelector: "app=ratings"})
		if err != nil {
			return false, err
		}
		ratingsPods = nil
		for _, p := range l.Items {
			if p.Status.Phase == corev1.PodRunning {
				ratingsPods = append(ratingsPods, "shop/"+p.Name)
			}
		}
		o, err := c.Client.CoreV1().Pods("other").Get(ctx, "reviews-9", metav1.GetOptions{})
		return len(ratingsPods) == 2 && err == nil && o.Status.Phase == corev1.PodRunning, err
	})
	if err != nil {
		t.Fatalf("the Deployment's pods (%v) or other/reviews-9 not Running: %v", ratingsPods, err)
	}
	sort.Strings(ratingsPods)

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"a Service's pods", []string{"svc/reviews", "-n", "shop"}, []string{"shop/reviews-0", "shop/reviews-1"}},
		{"a Deployment's pods", []string{"deploy/ratings", "-n", "shop"}, ratingsPods},
		{"a selector", []string{"-n", "shop", "-l", "app=reviews"}, []string{"shop/reviews-0", "shop/reviews-1"}},
		{"a selector in all namespaces", []string{"-A", "-l", "app=reviews"}, []string{"other/reviews-9", "shop/reviews-0", "shop/reviews-1"}},
		{"two pods by name", []string{"reviews-1", "pod/cart-0", "-n", "shop"}, []string{"shop/cart-0", "shop/reviews-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := runCmd(ctx, c, append(tc.args, "--window", "1s", "-o", "json")...)
			if err != nil {
				t.Fatalf("why-slow %v: %v\n%s", tc.args, err, stderr)
			}
			var r diagnose.SweepReport
			if err := json.Unmarshal([]byte(stdout), &r); err != nil {
				t.Fatalf("not a sweep report: %v\n%.400s", err, stdout)
			}
			var got []string
			for _, p := range r.Pods {
				got = append(got, p.Namespace+"/"+p.Pod)
				if p.Report == nil || p.Partial != "" || p.Error != "" {
					t.Errorf("%s/%s not diagnosed in full: error %q, partial %q", p.Namespace, p.Pod, p.Error, p.Partial)
				}
			}
			sort.Strings(got)
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("why-slow %v swept %v, want %v", tc.args, got, tc.want)
			}
		})
	}

	t.Run("a bare pod name is one pod", func(t *testing.T) {
		stdout, stderr, err := runCmd(ctx, c, "reviews-0", "-n", "shop", "--window", "1s", "-o", "json")
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		var r diagnose.Report
		if err := json.Unmarshal([]byte(stdout), &r); err != nil || r.Target != "pod shop/reviews-0" {
			t.Errorf("report of %q (%v), want pod shop/reviews-0", r.Target, err)
		}
	})

	t.Run("port-forward refused", func(t *testing.T) {
		if _, err := c.UserWithRole(ctx, "viewer", "shop",
			rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods", "pods/log", "events", "services"}, Verbs: []string{"get", "list"}}); err != nil {
			t.Fatal(err)
		}
		kc, err := c.UserKubeconfig("viewer")
		if err != nil {
			t.Fatal(err)
		}
		stdout, stderr, err := runCmdAs(ctx, kc, "-n", "shop", "-l", "app=reviews", "--window", "1s")
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		t.Logf("sweep as a user who may not port-forward:\n%s", stdout)
		for _, want := range []string{
			"0 with findings, 2 of unknown health, 0 healthy",
			"  - 2 pods: Envoy admin API not read: port-forward to shop/POD is forbidden: reading the sidecar's admin API needs get and create on pods/portforward in namespace shop",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("summary lacks %q:\n%s", want, stdout)
			}
		}
	})
}
