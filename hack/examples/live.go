package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/meshtest"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

// mesh is a detached control plane set up for a section of examples.
type mesh struct {
	// Kubeconfig is its admin kubeconfig.
	Kubeconfig string
	stops      []func() error
}

// Stop stops the control plane and what serves its pods, last started first. It is safe to
// call again.
func (m *mesh) Stop() error {
	var errs []error
	for i := len(m.stops) - 1; i >= 0; i-- {
		errs = append(errs, m.stops[i]())
	}
	m.stops = nil
	return errors.Join(errs...)
}

// startDetached starts a control plane in stateDir, stopped by m.Stop.
func (m *mesh) startDetached(ctx context.Context, opts testcluster.Options, stateDir string) (*testcluster.Cluster, error) {
	c, err := testcluster.StartDetached(ctx, opts, stateDir)
	if err != nil {
		return nil, err
	}
	m.stops = append(m.stops, func() error { return testcluster.StopDetached(stateDir) })
	m.Kubeconfig = c.Kubeconfig
	return c, nil
}

// startLive starts a control plane in stateDir with one pod per incident folder in namespace
// default (productpage-INCIDENT), each sidecar replaying its incident through kwok's
// port-forward, logs and exec; reviews-v2 behind a reviews Service answers the hop from
// productpage-network-latency; Istio's CRDs are served, with no object. work holds the
// replays' files. On failure what started is stopped.
func startLive(ctx context.Context, incidents, stateDir, work string) (*mesh, error) {
	m := &mesh{}
	if err := m.setUpLive(ctx, incidents, stateDir, work); err != nil {
		return nil, errors.Join(err, m.Stop())
	}
	return m, nil
}

func (m *mesh) setUpLive(ctx context.Context, incidents, stateDir, work string) error {
	entries, err := os.ReadDir(incidents)
	if err != nil {
		return err
	}
	var pods []meshtest.Pod
	for _, e := range entries {
		if e.IsDir() && e.Name() != "gen" {
			pods = append(pods, meshtest.Pod{Name: "productpage-" + e.Name(), Incident: e.Name(), Labels: map[string]string{"app": "productpage", "incident": e.Name()}})
		}
	}
	hop := filepath.Join(work, "reviews-v2")
	if err := os.MkdirAll(hop, 0o755); err != nil {
		return err
	}
	if err := meshtest.WriteHopServer(incidents, hop); err != nil {
		return err
	}
	pods = append(pods, meshtest.Pod{Name: "reviews-v2", Incident: hop, Labels: map[string]string{"app": "reviews"}})

	replays, err := meshtest.ServeReplays(incidents, "default", pods, work)
	if err != nil {
		return err
	}
	m.stops = append(m.stops, func() error { replays.Close(); return nil })
	c, err := m.startDetached(ctx, testcluster.Options{KwokRules: replays.Rules}, stateDir)
	if err != nil {
		return err
	}
	if err := meshtest.CreatePods(ctx, c, incidents, "default", pods); err != nil {
		return err
	}
	if err := meshtest.CreateService(ctx, c, "default", "reviews", map[string]string{"app": "reviews"}); err != nil {
		return err
	}
	crds, err := testcluster.IstioCRDs()
	if err != nil {
		return err
	}
	if err := c.Apply(ctx, crds); err != nil {
		return fmt.Errorf("Istio's CRDs: %w", err)
	}
	return nil
}
