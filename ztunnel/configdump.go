package ztunnel

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// ConfigDump is what the rules read of ztunnel's /config_dump (admin port 15000): the workloads
// istiod sent it, the certificates it holds for the workloads of its node, and the in-pod
// proxies it runs for them.
type ConfigDump struct {
	Workloads    []Workload
	Certificates []Certificate
	// WorkloadState is the in-pod proxies of the node's captured pods, by pod UID.
	WorkloadState map[string]WorkloadState
}

// Workload is one workload of ztunnel's workload list.
type Workload struct {
	UID            string   `json:"uid"`
	Name           string   `json:"name"`
	WorkloadName   string   `json:"workloadName"`
	Namespace      string   `json:"namespace"`
	ServiceAccount string   `json:"serviceAccount"`
	Node           string   `json:"node"`
	WorkloadIPs    []string `json:"workloadIps"`
	// Protocol is HBONE for a pod ztunnel captures (or a sidecar accepting HBONE), TCP for one
	// it does not.
	Protocol string `json:"protocol"`
	Status   string `json:"status"`
}

// Certificate is one workload identity's certificate: State is Available, Initializing or
// "Unavailable: ERROR".
type Certificate struct {
	Identity string `json:"identity"`
	State    string `json:"state"`
}

// WorkloadState is one in-pod proxy: State is Up or Pending.
type WorkloadState struct {
	State string `json:"state"`
	Info  struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"info"`
}

// ParseConfigDump reads a ztunnel config dump. Its lists are arrays since ztunnel 1.23 and
// objects keyed by address or name before; both are read, as istioctl reads them.
func ParseConfigDump(b []byte) (*ConfigDump, error) {
	var raw struct {
		Workloads     json.RawMessage          `json:"workloads"`
		Certificates  json.RawMessage          `json:"certificates"`
		WorkloadState map[string]WorkloadState `json:"workloadState"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("not a ztunnel config dump: %w", err)
	}
	if raw.Workloads == nil && raw.WorkloadState == nil {
		return nil, fmt.Errorf("not a ztunnel config dump: no workloads and no workloadState")
	}
	d := &ConfigDump{WorkloadState: raw.WorkloadState}
	if err := listOrMap(raw.Workloads, &d.Workloads); err != nil {
		return nil, fmt.Errorf("workloads: %w", err)
	}
	if err := listOrMap(raw.Certificates, &d.Certificates); err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	return d, nil
}

// listOrMap decodes a JSON array, or the values of a JSON object in the order of their keys.
func listOrMap[T any](b json.RawMessage, out *[]T) error {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	if err := json.Unmarshal(b, out); err == nil {
		return nil
	}
	var m map[string]T
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		*out = append(*out, m[k])
	}
	return nil
}

// Workload finds a pod in the workload list by namespace and name.
func (d *ConfigDump) Workload(namespace, name string) *Workload {
	for i := range d.Workloads {
		if w := &d.Workloads[i]; w.Namespace == namespace && w.Name == name {
			return w
		}
	}
	return nil
}

// Proxy finds a pod's in-pod proxy by namespace and name.
func (d *ConfigDump) Proxy(namespace, name string) (WorkloadState, bool) {
	for _, s := range d.WorkloadState {
		if s.Info.Namespace == namespace && s.Info.Name == name {
			return s, true
		}
	}
	return WorkloadState{}, false
}

// Certificate finds the certificate of an identity ("spiffe://TRUST/ns/NS/sa/SA"), matched
// on its namespace and service account whatever the trust domain.
func (d *ConfigDump) Certificate(namespace, serviceAccount string) (Certificate, bool) {
	suffix := "/ns/" + namespace + "/sa/" + serviceAccount
	for _, c := range d.Certificates {
		if strings.HasSuffix(c.Identity, suffix) {
			return c, true
		}
	}
	return Certificate{}, false
}
