package collect

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// forward is a running port-forward from a local port chosen by the forwarder to a pod's port.
type forward struct {
	local  uint16
	stop   chan struct{}
	done   chan error
	client *http.Client
	once   sync.Once
}

// startPortForward opens a client-go port-forward through the API server to port of the pod
// and returns once it listens on 127.0.0.1. Like kubectl (1.31 and later), it tunnels SPDY
// over a WebSocket and falls back to plain SPDY when the API server or a proxy in between
// does not upgrade to WebSockets.
func startPortForward(ctx context.Context, cfg *rest.Config, client kubernetes.Interface, ns, pod string, port int) (*forward, error) {
	u := client.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("portforward").URL()
	rt, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("port-forward to %s/%s: %w", ns, pod, err)
	}
	spdyDialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	wsDialer, err := portforward.NewSPDYOverWebsocketDialer(u, cfg)
	if err != nil {
		return nil, fmt.Errorf("port-forward to %s/%s: %w", ns, pod, err)
	}
	fallback := func(err error) bool { return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err) }
	dialer := &recordingDialer{Dialer: portforward.NewFallbackDialer(wsDialer, spdyDialer, fallback)}
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)},
		stop, ready, io.Discard, io.Discard)
	if err != nil {
		return nil, fmt.Errorf("port-forward to %s/%s: %w", ns, pod, err)
	}
	f := &forward{stop: stop, done: make(chan error, 1)}
	go func() { f.done <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-f.done:
		return nil, forwardError(ns, pod, port, dialer.err(), err)
	case <-ctx.Done():
		f.Stop()
		return nil, fmt.Errorf("port-forward to %s/%s: %w", ns, pod, ctx.Err())
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) == 0 {
		f.Stop()
		return nil, fmt.Errorf("port-forward to %s/%s: no local port: %v", ns, pod, err)
	}
	f.local = ports[0].Local
	// A transport of its own, so its idle connections can be closed before the forward stops.
	f.client = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1}}
	return f, nil
}

// forwardError turns a failed port-forward into an error that says what to do: RBAC first,
// since it is the usual cause and kubectl's message does not name the permission.
func forwardError(ns, pod string, port int, dialErr, err error) error {
	if dialErr != nil && apierrors.IsForbidden(dialErr) || err != nil && strings.Contains(err.Error(), "is forbidden") {
		return fmt.Errorf("port-forward to %s/%s is forbidden: reading the sidecar's admin API needs get and create on pods/portforward in namespace %s (get for the WebSocket port-forward, create for SPDY; `kubectl auth can-i get pods/portforward -n %s` checks it; `kubectl mesh rbac` prints the roles the tool needs)",
			ns, pod, ns, ns)
	}
	if dialErr != nil {
		err = dialErr
	}
	return fmt.Errorf("port-forward to port %d of %s/%s: %w; check that the pod is Running and that `kubectl port-forward -n %s pod/%s %d` works",
		port, ns, pod, err, ns, pod, port)
}

// BaseURL is the forwarded admin API's address.
func (f *forward) BaseURL() string { return fmt.Sprintf("http://127.0.0.1:%d", f.local) }

// HTTPClient sends requests to the forwarded port.
func (f *forward) HTTPClient() *http.Client { return f.client }

// Stop ends the port-forward and waits for it; it is safe to call more than once.
func (f *forward) Stop() {
	f.once.Do(func() {
		if f.client != nil {
			f.client.CloseIdleConnections()
		}
		close(f.stop)
		<-f.done
	})
}

// recordingDialer keeps the dial error, whose type (a Forbidden StatusError) client-go's
// port-forward flattens into a string.
type recordingDialer struct {
	httpstream.Dialer
	mu      sync.Mutex
	lastErr error
}

func (d *recordingDialer) Dial(protocols ...string) (httpstream.Connection, string, error) {
	c, p, err := d.Dialer.Dial(protocols...)
	if err != nil {
		d.mu.Lock()
		d.lastErr = err
		d.mu.Unlock()
	}
	return c, p, err
}

func (d *recordingDialer) err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastErr
}
