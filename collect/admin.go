package collect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// SampleStats takes two filtered Prometheus stats samples of a pod's sidecar, o.Window apart,
// through one port-forward to its admin port: what the hop, mtls and canary read of other pods.
func SampleStats(ctx context.Context, o CaptureOptions, ns, pod string) (first, second []byte, err error) {
	fw, err := startPortForward(ctx, o.RESTConfig, o.Client, ns, pod, AdminPort)
	if err != nil {
		return nil, nil, err
	}
	defer fw.Stop()
	admin := &envoyadmin.AdminClient{BaseURL: fw.BaseURL(), HTTP: fw.HTTPClient()}
	if first, err = admin.Stats(ctx, envoyadmin.StatsPrometheus, envoyadmin.DefaultStatsFilter); err != nil {
		return nil, nil, err
	}
	window := o.Window
	if window <= 0 {
		window = DefaultWindow
	}
	select {
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case <-time.After(window):
	}
	second, err = admin.Stats(ctx, envoyadmin.StatsPrometheus, envoyadmin.DefaultStatsFilter)
	return first, second, err
}

// PodInterval is one pod's sidecar sampled over a window: its stats interval, or why not.
type PodInterval struct {
	Namespace, Pod string
	Interval       *envoyadmin.StatsInterval
	Err            error
}

// SampleIntervals samples the sidecars of pods at once, each twice o.Window apart (SampleStats),
// and reads the Istio metric families asked for into intervals: what canary and mtls measure of
// the pods they change. The result is in the order of pods.
func SampleIntervals(ctx context.Context, o CaptureOptions, pods []corev1.Pod, families ...string) []PodInterval {
	out := make([]PodInterval, len(pods))
	var wg sync.WaitGroup
	only := envoyadmin.WithPrometheusFamilies(families...)
	window := o.Window
	if window <= 0 {
		window = DefaultWindow
	}
	for i := range pods {
		out[i].Namespace, out[i].Pod = pods[i].Namespace, pods[i].Name
		wg.Add(1)
		go func(r *PodInterval) {
			defer wg.Done()
			a, b, err := SampleStats(ctx, o, r.Namespace, r.Pod)
			if err != nil {
				r.Err = err
				return
			}
			sa, err1 := envoyadmin.ParseStatsPrometheus(bytes.NewReader(a), only)
			sb, err2 := envoyadmin.ParseStatsPrometheus(bytes.NewReader(b), only)
			if err := errors.Join(err1, err2); err != nil {
				r.Err = fmt.Errorf("stats do not parse: %w", err)
				return
			}
			r.Interval = envoyadmin.NewStatsInterval(sa, sb, window)
		}(&out[i])
	}
	wg.Wait()
	return out
}

// ConfigDump reads a pod's sidecar's configuration (without endpoints: listeners, clusters,
// routes, secrets), redacted, through a port-forward to its admin port.
func ConfigDump(ctx context.Context, o CaptureOptions, ns, pod string) ([]byte, error) {
	fw, err := startPortForward(ctx, o.RESTConfig, o.Client, ns, pod, AdminPort)
	if err != nil {
		return nil, err
	}
	defer fw.Stop()
	admin := &envoyadmin.AdminClient{BaseURL: fw.BaseURL(), HTTP: fw.HTTPClient()}
	b, err := admin.ConfigDump(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("config dump of %s/%s: %w", ns, pod, err)
	}
	return envoyadmin.RedactConfigDump(b), nil
}
