package evidence

import "time"

// The evidence files a capture writes itself, beside what it read from the proxy and the API.

// MetaFile is the capture's meta.json: which pod, and when each sample was taken.
type MetaFile struct {
	Pod       string `json:"pod,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	// CaptureTimes are the times of the first and second stats samples.
	CaptureTimes []time.Time `json:"captureTimes,omitempty"`
	// WindowSeconds is the time between the two stats samples.
	WindowSeconds float64 `json:"windowSeconds,omitempty"`
	// CapturedBy names the tool and version that wrote the folder.
	CapturedBy string `json:"capturedBy,omitempty"`
	// NodeTimes are the times of the first and second node samples (node.txt, node-2.txt), when
	// they were taken apart from the stats samples.
	NodeTimes []time.Time `json:"nodeTimes,omitempty"`
	// NamespaceLabels are the pod's namespace's labels that decide how the mesh serves it
	// (istio.io/dataplane-mode, istio.io/use-waypoint, istio-injection, istio.io/rev).
	NamespaceLabels map[string]string `json:"namespaceLabels,omitempty"`
	// Ztunnel is the ztunnel pod on an ambient pod's node, as namespace/name.
	Ztunnel string `json:"ztunnel,omitempty"`
}

// HopFile is hops.json.
type HopFile struct {
	// Upstream is the cluster of this proxy whose hop was followed.
	Upstream string `json:"upstream"`
	// ServiceNamespace and ServiceName name the upstream's Service.
	ServiceNamespace string `json:"serviceNamespace"`
	ServiceName      string `json:"serviceName"`
	// Port is the endpoints' port: the server's sidecar names its inbound cluster after it
	// (inbound|PORT||).
	Port int `json:"port"`
	// WindowSeconds is the time between each server pod's two samples.
	WindowSeconds float64      `json:"windowSeconds"`
	Pods          []HopPodFile `json:"pods"`
	// Warnings say which of the upstream's pods could not be sampled, and why.
	Warnings []string `json:"warnings,omitempty"`
}

// HopPodFile names one server pod's two stats files (Prometheus format).
type HopPodFile struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	Stats     string `json:"stats"`
	Stats2    string `json:"stats2"`
}
