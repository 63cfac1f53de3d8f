package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/adminreplay"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/meshtest"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/nodereplay"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

// switching is the admin API of the configure mesh's pods: the healthy incident, with a
// STRICT config dump once a PeerAuthentication exists.
type switching struct {
	mu sync.Mutex
	h  http.Handler
}

func (s *switching) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h := s.h
	s.mu.Unlock()
	h.ServeHTTP(w, r)
}

func (s *switching) set(h http.Handler) {
	s.mu.Lock()
	s.h = h
	s.mu.Unlock()
}

// configureMesh is the mesh of the install and configure examples.
type configureMesh struct {
	*mesh
	// Charts are Istio's own charts beside the project (../shared/istio-charts).
	Charts string
	// Injector is the webhook the charts' injector configuration points at.
	Injector *meshtest.Injector
}

// startConfigure starts a control plane in stateDir with bookinfo's Deployments (no sidecars
// yet) and Services, a cluster-wide replay of the healthy incident for the sidecars to come
// (switching to STRICT mTLS once a PeerAuthentication asks for it, as istiod's push would),
// node probes replaying node-cpu-steal, the charts and an injector. work holds their files.
// On failure what started is stopped.
func startConfigure(ctx context.Context, root, stateDir, work string) (*configureMesh, error) {
	m := &configureMesh{mesh: &mesh{}}
	if err := m.setUp(ctx, root, stateDir, work); err != nil {
		return nil, errors.Join(err, m.Stop())
	}
	return m, nil
}

func (m *configureMesh) setUp(ctx context.Context, root, stateDir, work string) error {
	incidents := filepath.Join(root, "testdata", "incidents")
	healthy, err := adminreplay.New(filepath.Join(incidents, "healthy"))
	if err != nil {
		return err
	}
	sw := &switching{h: healthy}
	srv := httptest.NewServer(sw)
	m.stops = append(m.stops, func() error { srv.Close(); return nil })
	probe := filepath.Join(work, "probe")
	if err := os.MkdirAll(probe, 0o755); err != nil {
		return err
	}
	nr, err := nodereplay.Start(context.Background(), filepath.Join(incidents, "node-cpu-steal"), probe)
	if err != nil {
		return err
	}
	m.stops = append(m.stops, func() error { nr.Stop(); return nil })
	c, err := m.startDetached(ctx, testcluster.Options{KwokRules: []string{
		testcluster.PortForwardRule("", "sidecars", 15000, strings.TrimPrefix(srv.URL, "http://")),
		testcluster.ExecRule("", "probe", []string{"probe"}, probe),
	}}, stateDir)
	if err != nil {
		return err
	}
	if err := createBookinfo(ctx, c); err != nil {
		return err
	}
	strict, err := strictReplay(incidents, filepath.Join(work, "strict"))
	if err != nil {
		return err
	}
	watchCtx, cancel := context.WithCancel(ctx)
	m.stops = append(m.stops, func() error { cancel(); return nil })
	go switchOnPeerAuthentication(watchCtx, c, sw, strict)

	m.Charts = filepath.Join(root, "..", "shared", "istio-charts", meshtest.IstioVersion)
	if _, err := os.Stat(filepath.Join(m.Charts, "istiod", "Chart.yaml")); err != nil {
		return fmt.Errorf("Istio's charts are not beside the project (../shared/istio-charts): %w", err)
	}
	if m.Injector, err = meshtest.NewInjector(); err != nil {
		return err
	}
	m.stops = append(m.stops, m.Injector.Close)
	return nil
}

// createBookinfo creates namespace bookinfo with productpage-v1, reviews-v1 and reviews-v2
// and the Services productpage and reviews.
func createBookinfo(ctx context.Context, c *testcluster.Cluster) error {
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bookinfo"}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("namespace bookinfo: %w", err)
	}
	for _, d := range []struct{ name, app, version string }{{"productpage-v1", "productpage", "v1"}, {"reviews-v1", "reviews", "v1"}, {"reviews-v2", "reviews", "v2"}} {
		one := int32(1)
		labels := map[string]string{"app": d.app, "version": d.version}
		dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: d.name, Namespace: "bookinfo"}, Spec: appsv1.DeploymentSpec{Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: d.app, Image: "docker.io/istio/examples-bookinfo-" + d.name + ":1.20.2"}}}}}}
		if _, err := c.Client.AppsV1().Deployments("bookinfo").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("deployment %s: %w", d.name, err)
		}
	}
	for _, app := range []string{"productpage", "reviews"} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: "bookinfo"}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": app}, Ports: []corev1.ServicePort{{Name: "http", Port: 9080, TargetPort: intstr.FromInt32(9080)}}}}
		if _, err := c.Client.CoreV1().Services("bookinfo").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("service %s: %w", app, err)
		}
	}
	return nil
}

// strictReplay writes into dir the healthy incident with mtls-mismatch's config dump, whose
// inbound listeners are STRICT, and replays it.
func strictReplay(incidents, dir string) (*adminreplay.Handler, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	files := map[string]string{"config_dump.json": "mtls-mismatch"}
	for _, f := range []string{"stats.prom", "stats-2.prom", "meta.json", "server_info.json", "clusters.json"} {
		files[f] = "healthy"
	}
	for f, from := range files {
		b, err := os.ReadFile(filepath.Join(incidents, from, f))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return nil, err
		}
	}
	return adminreplay.New(dir)
}

// switchOnPeerAuthentication plays istiod's push: a second after PeerAuthentication
// bookinfo/default appears, the sidecars answer with the strict replay.
func switchOnPeerAuthentication(ctx context.Context, c *testcluster.Cluster, sw *switching, strict http.Handler) {
	pa := schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "peerauthentications"}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
		if _, err := c.Dynamic.Resource(pa).Namespace("bookinfo").Get(ctx, "default", metav1.GetOptions{}); err == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			sw.set(strict)
			return
		}
	}
}
