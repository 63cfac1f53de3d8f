package testcluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// PortForwardGet opens a client-go SPDY port-forward through the API server to port of
// namespace/pod (as istioctl reaches Envoy's admin API) and returns the body of GET path.
func PortForwardGet(ctx context.Context, cfg *rest.Config, client kubernetes.Interface, namespace, pod string, port int, path string) ([]byte, error) {
	dialer, err := spdyDialer(cfg, portForwardURL(client, namespace, pod))
	if err != nil {
		return nil, err
	}
	return forwardAndGet(ctx, dialer, pod, port, path)
}

// portForwardURL is the portforward subresource of namespace/pod.
func portForwardURL(client kubernetes.Interface, namespace, pod string) *url.URL {
	return client.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).
		Name(pod).SubResource("portforward").URL()
}

func spdyDialer(cfg *rest.Config, u *url.URL) (httpstream.Dialer, error) {
	rt, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, err
	}
	return spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u), nil
}

// forwardAndGet forwards a free local port to port of pod through dialer, returns the body
// of GET path through it and closes the forward.
func forwardAndGet(ctx context.Context, dialer httpstream.Dialer, pod string, port int, path string) ([]byte, error) {
	stop, ready := make(chan struct{}), make(chan struct{})
	var errOut bytes.Buffer
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)},
		stop, ready, io.Discard, &errOut)
	if err != nil {
		return nil, err
	}
	// done is closed, not sent on, so both the select and the deferred wait see it.
	var forwardErr error
	done := make(chan struct{})
	go func() { forwardErr = fw.ForwardPorts(); close(done) }()
	defer func() { close(stop); <-done }()
	select {
	case <-ready:
	case <-done:
		return nil, fmt.Errorf("port-forward to %s ended before it was ready: %v", pod, forwardErr)
	case <-ctx.Done():
		return nil, fmt.Errorf("port-forward to %s: %w", pod, ctx.Err())
	}
	ports, err := fw.GetPorts()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", ports[0].Local, path), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s through port-forward to %s: %w (%s)", path, pod, err, errOut.String())
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s through port-forward to %s: %w", path, pod, err)
	}
	return body, nil
}
