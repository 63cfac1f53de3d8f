package evidence

import corev1 "k8s.io/api/core/v1"

// SidecarContainer is the container of Istio's sidecar proxy.
const SidecarContainer = "istio-proxy"

// HasSidecar reports whether a pod runs Istio's sidecar: an istio-proxy container, or a native
// sidecar (an init container with restartPolicy Always), as Istio injects it on Kubernetes 1.29
// and later. The evidence of a pod without one is an ambient pod's, or none.
func HasSidecar(pod *corev1.Pod) bool {
	for _, c := range pod.Spec.Containers {
		if c.Name == SidecarContainer {
			return true
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == SidecarContainer && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			return true
		}
	}
	return false
}
