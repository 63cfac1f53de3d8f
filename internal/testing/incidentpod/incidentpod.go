// Package incidentpod turns an incident folder's pod.yaml into a pod that a test control plane
// (kube-apiserver with kwok as kubelet) accepts and runs: the same containers, labels,
// annotations and resources as the captured pod, without what only the original cluster had
// (owner references, volumes, service account, node). The integration tests, benchmarks and
// `make sandbox` create the incidents' pods with it.
package incidentpod

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Spec is a pod to create and, when the captured pod was not healthy, the container statuses
// to write once kwok has made it Running, so the live pod shows what the capture showed.
type Spec struct {
	Pod *corev1.Pod
	// Status is nil when the captured pod was Running with every container ready.
	Status *corev1.PodStatus
}

// FromIncident reads dir/pod.yaml and returns the pod to create as namespace/name on node.
// A folder without pod.yaml gives a plain meshed pod (an app container and istio-proxy).
func FromIncident(dir, namespace, name, node string) (*Spec, error) {
	var orig corev1.Pod
	b, err := os.ReadFile(filepath.Join(dir, "pod.yaml"))
	switch {
	case os.IsNotExist(err):
		orig.Spec.Containers = []corev1.Container{{Name: "app", Image: "example.invalid/app"}, {Name: "istio-proxy", Image: "example.invalid/proxyv2"}}
		orig.Labels = map[string]string{"app": name}
	case err != nil:
		return nil, err
	default:
		if err := yaml.Unmarshal(b, &orig); err != nil {
			return nil, fmt.Errorf("%s/pod.yaml: %w", dir, err)
		}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: namespace,
			Labels: orig.Labels, Annotations: orig.Annotations,
		},
		Spec: corev1.PodSpec{
			NodeName:       node,
			InitContainers: strip(orig.Spec.InitContainers),
			Containers:     strip(orig.Spec.Containers),
		},
	}
	spec := &Spec{Pod: pod}
	if unhealthy(&orig.Status) {
		st := orig.Status.DeepCopy()
		st.HostIP, st.PodIP, st.PodIPs, st.HostIPs = "", "", nil, nil // kwok's addresses stay
		spec.Status = st
	}
	return spec, nil
}

// strip drops what refers to objects of the original cluster: volume mounts (the volumes are
// not created) and environment from ConfigMaps, Secrets or fields kwok does not fill.
func strip(cs []corev1.Container) []corev1.Container {
	out := make([]corev1.Container, 0, len(cs))
	for _, c := range cs {
		c = *c.DeepCopy()
		c.VolumeMounts, c.EnvFrom, c.Env = nil, nil, nil
		// Probes and lifecycle hooks run nowhere under kwok; dropping them keeps the pod
		// valid when they refer to ports or files of the original.
		c.LivenessProbe, c.ReadinessProbe, c.StartupProbe, c.Lifecycle = nil, nil, nil, nil
		out = append(out, c)
	}
	return out
}

// unhealthy reports whether a captured pod had a container that was not ready or had been
// restarted, which the live pod must show too.
func unhealthy(st *corev1.PodStatus) bool {
	for _, cs := range append(append([]corev1.ContainerStatus(nil), st.ContainerStatuses...), st.InitContainerStatuses...) {
		if t := cs.State.Terminated; t != nil && t.ExitCode == 0 {
			continue // an init container that did its job
		}
		if !cs.Ready || cs.RestartCount > 0 || cs.LastTerminationState.Terminated != nil {
			return true
		}
	}
	return false
}

// CRILog returns the incident's access.log as the CRI log file kwok's Logs rules serve
// ("<RFC3339Nano time> stdout F <line>"), keeping the timestamps of a log captured with
// `kubectl logs --timestamps` so a capture with timestamps reads back the same lines. A folder
// without access.log gives an empty log.
func CRILog(dir string) ([]byte, error) {
	f, err := os.Open(filepath.Join(dir, "access.log"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var b bytes.Buffer
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		ts, line, ok := strings.Cut(sc.Text(), " ")
		if _, err := time.Parse(time.RFC3339Nano, ts); !ok || err != nil {
			ts, line = "2026-01-01T00:00:00Z", sc.Text()
		}
		b.WriteString(ts + " stdout F " + line + "\n")
	}
	return b.Bytes(), sc.Err()
}
