package collect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/evidence"
)

// MaxHopPods bounds the upstream pods sampled when following a hop: enough to tell the
// application's time from the way there, few enough to stay cheap on a big Service.
const MaxHopPods = 3

// followHop samples the inbound side of the upstream's ready, meshed pods over the window
// (two filtered stats samples each, at once) and adds hops.json and their samples to the
// evidence. What cannot be read becomes a warning in hops.json; no pod at all is an error.
func followHop(ctx context.Context, o CaptureOptions, res *Result, t diagnose.HopTarget) error {
	port, pods, err := hopEndpoints(ctx, o, t)
	if err != nil {
		return err
	}
	hf := evidence.HopFile{Upstream: t.Cluster, ServiceNamespace: t.ServiceNamespace, ServiceName: t.ServiceName,
		Port: port, WindowSeconds: o.Window.Seconds()}
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "following the hop to %s.%s: sampling %d of its pods for %v\n", t.ServiceName, t.ServiceNamespace, len(pods), o.Window)
	}
	type sampled struct {
		first, second []byte
		err           error
	}
	out := make([]sampled, len(pods))
	var wg sync.WaitGroup
	for i, p := range pods {
		wg.Add(1)
		go func(i int, pod string) {
			defer wg.Done()
			out[i].first, out[i].second, out[i].err = sampleInbound(ctx, o, t.ServiceNamespace, pod)
		}(i, p)
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("following the hop to %s.%s interrupted: %w", t.ServiceName, t.ServiceNamespace, err)
	}
	for i, p := range pods {
		if out[i].err != nil {
			hf.Warnings = append(hf.Warnings, fmt.Sprintf("hop pod %s/%s not sampled: %v", t.ServiceNamespace, p, out[i].err))
			continue
		}
		n := len(hf.Pods) + 1
		first, second := fmt.Sprintf("hop-%d.prom", n), fmt.Sprintf("hop-%d-2.prom", n)
		res.Evidence.Add(first, out[i].first)
		res.Evidence.Add(second, out[i].second)
		hf.Pods = append(hf.Pods, evidence.HopPodFile{Namespace: t.ServiceNamespace, Pod: p, Stats: first, Stats2: second})
	}
	b, err := json.MarshalIndent(hf, "", " ")
	if err != nil {
		return err
	}
	res.Evidence.Add(evidence.Hops, append(b, '\n'))
	return nil
}

// hopEndpoints finds the port the Service's endpoints listen on (the server sidecar's
// inbound|PORT|| cluster) and up to MaxHopPods of its ready, meshed pods.
func hopEndpoints(ctx context.Context, o CaptureOptions, t diagnose.HopTarget) (int, []string, error) {
	ns, name := t.ServiceNamespace, t.ServiceName
	svc, err := o.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if msg, ok := refusal(err, "reading service "+ns+"/"+name, "get", "services", ns); ok {
		return 0, nil, errors.New(msg)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("service %s/%s: %w", ns, name, err)
	}
	var portName string
	found := false
	for _, p := range svc.Spec.Ports {
		if int(p.Port) == t.ServicePort {
			portName, found = p.Name, true
		}
	}
	if !found {
		return 0, nil, fmt.Errorf("service %s/%s has no port %d", ns, name, t.ServicePort)
	}
	slices, err := o.Client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + name})
	if msg, ok := refusal(err, "listing the EndpointSlices of service "+ns+"/"+name, "list", "endpointslices.discovery.k8s.io", ns); ok {
		return 0, nil, errors.New(msg)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("endpoints of service %s/%s: %w", ns, name, err)
	}
	port := 0
	seen := map[string]bool{}
	var pods []string
	for _, s := range slices.Items {
		for _, p := range s.Ports {
			if p.Port != nil && (p.Name == nil && portName == "" || p.Name != nil && *p.Name == portName) {
				port = int(*p.Port)
			}
		}
		for _, e := range s.Endpoints {
			if e.TargetRef == nil || e.TargetRef.Kind != "Pod" || seen[e.TargetRef.Name] {
				continue
			}
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			seen[e.TargetRef.Name] = true
			pods = append(pods, e.TargetRef.Name)
		}
	}
	if port == 0 || len(pods) == 0 {
		return 0, nil, fmt.Errorf("service %s/%s has no ready pod endpoints for port %d", ns, name, t.ServicePort)
	}
	sort.Strings(pods)
	var meshed []string
	for _, p := range pods {
		pod, err := o.Client.CoreV1().Pods(ns).Get(ctx, p, metav1.GetOptions{})
		if err == nil && checkSidecar(pod) == nil && pod.Status.Phase == corev1.PodRunning {
			meshed = append(meshed, p)
		}
		if len(meshed) == MaxHopPods {
			break
		}
	}
	if len(meshed) == 0 {
		return 0, nil, fmt.Errorf("no running pod of service %s/%s has an istio-proxy sidecar", ns, name)
	}
	return port, meshed, nil
}

// sampleInbound takes two filtered stats samples of a pod's sidecar, the window apart.
func sampleInbound(ctx context.Context, o CaptureOptions, ns, pod string) (first, second []byte, err error) {
	return SampleStats(ctx, o, ns, pod)
}
