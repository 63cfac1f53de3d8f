package collect

import (
	"context"
	"fmt"
	"time"

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
