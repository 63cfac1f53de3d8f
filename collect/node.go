package collect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/httpstream"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/kubectl-mesh/kubectl-mesh/evidence"
	"github.com/kubectl-mesh/kubectl-mesh/nodeinfo"
)

const (
	// DefaultDebugImage runs the node probe in an ephemeral container when istio-proxy has no
	// tail (a distroless proxy image).
	DefaultDebugImage = "busybox:1.36"
	// proxyUID is the user istio-proxy runs as; the debug container runs as it too, since
	// reading the proxy's /proc/1/root needs the same user without CAP_SYS_PTRACE.
	proxyUID = 1337
	// probeTimeout bounds one exec of the probe: it reads a few small files.
	probeTimeout = 30 * time.Second
	// debugStartTimeout bounds the wait for the debug container, image pull included.
	debugStartTimeout = 2 * time.Minute
)

// nodeState is what the node evidence of one capture needs between its two samples.
type nodeState struct {
	// probeOff and cadvisorOff stop a read that failed once: one warning, not one per sample.
	probeOff, cadvisorOff bool
	// container is where the probe runs (istio-proxy, or the debug container), root the path
	// its files are read under.
	container, root string
	node            string
	times           []time.Time
}

// node takes node sample 1 or 2: the probe's output (node.txt, node-2.txt) and the kubelet's
// cAdvisor lines of the pod (cadvisor.prom, cadvisor-2.prom). What cannot be read becomes one
// warning that names the missing permission, and the capture goes on.
func (r *captureRun) node(ctx context.Context, sample int) {
	if r.o.SkipNode {
		return
	}
	st := &r.nodeSt
	if sample == 1 {
		st.container, st.root = SidecarContainer, "/"
		if r.pod != nil && !evidence.HasSidecar(r.pod) && len(r.pod.Spec.Containers) > 0 {
			st.container = r.pod.Spec.Containers[0].Name // an ambient pod: its application's container
		}
		if r.o.RESTConfig == nil || !hasRESTClient(r.o.Client) {
			st.probeOff, st.cadvisorOff = true, true
			r.res.Warnings = append(r.res.Warnings, "node evidence not read: no REST client to exec with")
			return
		}
	}
	file, cadvisorFile := evidence.Node, evidence.Cadvisor
	if sample == 2 {
		file, cadvisorFile = evidence.Node2, evidence.Cadvisor2
	}
	if !st.probeOff {
		r.progress("node sample %d of 2 (exec in %s)", sample, st.container)
		t := r.o.Now()
		out, err := r.probe(ctx, st)
		if err != nil {
			st.probeOff = true
			r.res.Warnings = append(r.res.Warnings, "node evidence not read: "+err.Error())
		} else {
			_ = r.write(file, out)
			st.times = append(st.times, t.UTC())
		}
	}
	if !st.cadvisorOff {
		if err := r.cadvisor(ctx, st, cadvisorFile); err != nil {
			st.cadvisorOff = true
			r.res.Warnings = append(r.res.Warnings, "cAdvisor metrics not read: "+err.Error())
		}
	}
}

// nodeTimes are the times of the node samples for meta.json, when both were taken.
func (r *captureRun) nodeTimes() []time.Time {
	if len(r.nodeSt.times) == 2 {
		return r.nodeSt.times
	}
	return nil
}

// probe runs the probe in st.container; when istio-proxy has no tail it starts a debug
// container once and runs it there from then on.
func (r *captureRun) probe(ctx context.Context, st *nodeState) ([]byte, error) {
	out, stderr, err := r.exec(ctx, st.container, nodeinfo.ProbeCommand(st.root))
	if err == nil || nodeinfo.HasSections(string(out)) {
		// tail exits non-zero for the files a node lacks (cgroup v1 paths on v2): not a failure.
		return out, nil
	}
	if Forbidden(err) {
		return nil, fmt.Errorf("exec into %s is forbidden: needs get and create on pods/exec in namespace %s (get for the WebSocket exec, create for SPDY; `kubectl mesh rbac` prints the roles the tool needs)", st.container, r.o.Namespace)
	}
	if st.container != SidecarContainer || !notFound(err, stderr) {
		return nil, fmt.Errorf("exec of tail in %s: %v%s", st.container, err, FirstLine(stderr))
	}
	image := r.o.DebugImage
	if image == "" {
		image = DefaultDebugImage
	}
	r.progress("%s has no tail: starting an ephemeral debug container (%s)", SidecarContainer, image)
	name, err := r.startDebugContainer(ctx, image)
	if err != nil {
		return nil, err
	}
	st.container = name
	if strings.HasPrefix(st.root, "/") {
		// The debug container shares istio-proxy's process namespace, where PID 1 is the proxy's:
		// its root shows the proxy's cgroup; /proc/stat and the rest are the node's anyway.
		st.root = "/proc/1/root" + st.root
	}
	out, stderr, err = r.exec(ctx, st.container, nodeinfo.ProbeCommand(st.root))
	if err != nil && !nodeinfo.HasSections(string(out)) {
		return nil, fmt.Errorf("exec of tail in the debug container %s: %v%s", name, err, FirstLine(stderr))
	}
	return out, nil
}

// exec runs cmd in a container of the pod through the API server, as kubectl exec does: a
// WebSocket first, SPDY when the server or a proxy does not upgrade to WebSockets.
func (r *captureRun) exec(ctx context.Context, container string, cmd []string) (stdout, stderr []byte, err error) {
	return Exec(ctx, r.o.Client, r.o.RESTConfig, r.o.Namespace, r.o.Pod, container, cmd)
}

// Exec runs a command in a pod's container through the API server, as kubectl exec does
// (WebSocket, falling back to SPDY), bounded by the probe timeout, and returns what it wrote.
func Exec(ctx context.Context, client kubernetes.Interface, cfg *rest.Config, namespace, pod, container string, cmd []string) (stdout, stderr []byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req := client.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).
		SubResource("exec").VersionedParams(&corev1.PodExecOptions{
		Container: container, Command: cmd, Stdout: true, Stderr: true,
	}, scheme.ParameterCodec)
	spdyExec, err := remotecommand.NewSPDYExecutor(cfg, http.MethodPost, req.URL())
	if err != nil {
		return nil, nil, err
	}
	wsExec, err := remotecommand.NewWebSocketExecutor(cfg, http.MethodGet, req.URL().String())
	if err != nil {
		return nil, nil, err
	}
	ex, err := remotecommand.NewFallbackExecutor(wsExec, spdyExec, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return nil, nil, err
	}
	var out, errOut bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
	return out.Bytes(), errOut.Bytes(), err
}

// debugPrefix names the ephemeral containers the probe starts, so a later run finds one still
// running and reuses it: an ephemeral container cannot be removed from its pod, so one per run
// would pile up in the pod's spec.
const debugPrefix = "kubectl-mesh-node-"

// debugLifetime is how long a debug container stays for later runs to reuse (at least the
// capture's two samples); it only sleeps.
const debugLifetime = time.Hour

// debugContainer is the ephemeral container that runs the probe for a proxy image without tail:
// it sleeps long enough for both samples and for later runs, and targets istio-proxy, so it
// sees its processes.
func debugContainer(name, image string, window time.Duration, proxy *corev1.Container) corev1.EphemeralContainer {
	uid := int64(proxyUID)
	if proxy != nil && proxy.SecurityContext != nil && proxy.SecurityContext.RunAsUser != nil {
		uid = *proxy.SecurityContext.RunAsUser
	}
	sleep := int(max(2*window+2*time.Minute, debugLifetime).Seconds())
	return corev1.EphemeralContainer{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: name, Image: image, ImagePullPolicy: corev1.PullIfNotPresent,
			Command:                  []string{"sleep", fmt.Sprint(sleep)},
			TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			SecurityContext:          &corev1.SecurityContext{RunAsUser: &uid, RunAsNonRoot: boolPtr(uid != 0)},
		},
		TargetContainerName: SidecarContainer,
	}
}

func boolPtr(b bool) *bool { return &b }

// startDebugContainer adds the debug container to the pod, as kubectl debug does (a strategic
// merge patch of the ephemeralcontainers subresource), and waits until it runs.
func (r *captureRun) startDebugContainer(ctx context.Context, image string) (string, error) {
	pods := r.o.Client.CoreV1().Pods(r.o.Namespace)
	pod, err := pods.Get(ctx, r.o.Pod, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("debug container: %w", err)
	}
	if name := runningDebugContainer(pod, image); name != "" {
		r.progress("reusing the debug container %s", name)
		return name, nil
	}
	var proxy *corev1.Container
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} { // a native sidecar is an init container
		for i := range cs {
			if cs[i].Name == SidecarContainer && proxy == nil {
				proxy = &cs[i]
			}
		}
	}
	name := debugPrefix + utilrand.String(5)
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{
		"ephemeralContainers": []corev1.EphemeralContainer{debugContainer(name, image, r.o.Window, proxy)},
	}})
	if err != nil {
		return "", err
	}
	if _, err := pods.Patch(ctx, r.o.Pod, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "ephemeralcontainers"); err != nil {
		if Forbidden(err) {
			return "", fmt.Errorf("%s has no tail and adding a debug container is forbidden: needs patch on pods/ephemeralcontainers in namespace %s", SidecarContainer, r.o.Namespace)
		}
		return "", fmt.Errorf("debug container: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, debugStartTimeout)
	defer cancel()
	for {
		p, err := pods.Get(ctx, r.o.Pod, metav1.GetOptions{})
		if err == nil {
			for _, cs := range p.Status.EphemeralContainerStatuses {
				if cs.Name != name {
					continue
				}
				if cs.State.Running != nil {
					return name, nil
				}
				if w := cs.State.Waiting; w != nil && (strings.Contains(w.Reason, "ImagePull") || w.Reason == "InvalidImageName") {
					return "", fmt.Errorf("debug container %s: %s: %s (set another image)", name, w.Reason, w.Message)
				}
				if t := cs.State.Terminated; t != nil {
					return "", fmt.Errorf("debug container %s exited: %s", name, t.Reason)
				}
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("debug container %s did not start: %w", name, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// runningDebugContainer returns the name of a debug container an earlier run started in the
// pod with this image, targeting istio-proxy, and still running; "" when there is none.
func runningDebugContainer(pod *corev1.Pod, image string) string {
	running := map[string]bool{}
	for _, cs := range pod.Status.EphemeralContainerStatuses {
		running[cs.Name] = cs.State.Running != nil
	}
	for _, ec := range pod.Spec.EphemeralContainers {
		if strings.HasPrefix(ec.Name, debugPrefix) && ec.Image == image && ec.TargetContainerName == SidecarContainer && running[ec.Name] {
			return ec.Name
		}
	}
	return ""
}

// cadvisor reads the kubelet's /metrics/cadvisor through the API server's node proxy (or a
// sweep's recent scrape of the node) and keeps the pod's lines.
func (r *captureRun) cadvisor(ctx context.Context, st *nodeState, file string) error {
	if st.node == "" {
		// The pod the capture read at its start says where it runs: no need to ask again.
		if r.pod == nil || r.pod.Spec.NodeName == "" {
			return errors.New("the pod is not scheduled on a node")
		}
		st.node = r.pod.Spec.NodeName
	}
	kept, err := r.o.KubeCache.podCadvisor(ctx, r.o.Client, st.node, r.o.Namespace, r.o.Pod, maxScrapeAge(r.o.Window))
	if err != nil {
		return err
	}
	if len(kept) == 0 {
		return fmt.Errorf("node %s /metrics/cadvisor has no series of pod %s/%s", st.node, r.o.Namespace, r.o.Pod)
	}
	return r.write(file, kept)
}

// Forbidden reports an error of a request RBAC refused, also as an exec or port-forward words it.
func Forbidden(err error) bool {
	return apierrors.IsForbidden(err) || strings.Contains(err.Error(), "forbidden")
}

// notFound reports an exec whose command is missing from the image, as container runtimes and
// kubelets word it.
func notFound(err error, stderr []byte) bool {
	msg := err.Error() + " " + string(stderr)
	return strings.Contains(msg, "executable file not found") || strings.Contains(msg, "no such file or directory") && strings.Contains(msg, "exec")
}

// FirstLine is the first line of a command's stderr, as " (line)" to follow an error, or "".
func FirstLine(b []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if line == "" {
		return ""
	}
	return " (" + line + ")"
}

// hasRESTClient reports whether the clientset can build requests (fake clientsets cannot).
func hasRESTClient(c kubernetes.Interface) bool {
	rc, ok := c.CoreV1().RESTClient().(*rest.RESTClient)
	return !ok || rc != nil
}
