package envoyadmin

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// The JSON shape of /clusters?format=json (admin.v3.Clusters) after looseKeysJSON, so that
// snake_case and camelCase field names both match.
type clustersJSON struct {
	ClusterStatuses []clusterStatusJSON `json:"clusterstatuses"`
}

type clusterStatusJSON struct {
	Name            string           `json:"name"`
	AddedViaAPI     bool             `json:"addedviaapi"`
	HostStatuses    []hostStatusJSON `json:"hoststatuses"`
	CircuitBreakers *struct {
		Thresholds []thresholdJSON `json:"thresholds"`
	} `json:"circuitbreakers"`
}

type thresholdJSON struct {
	Priority           json.RawMessage `json:"priority"` // "HIGH", absent for DEFAULT, or 1
	MaxConnections     *looseUint      `json:"maxconnections"`
	MaxPendingRequests *looseUint      `json:"maxpendingrequests"`
	MaxRequests        *looseUint      `json:"maxrequests"`
	MaxRetries         *looseUint      `json:"maxretries"`
}

type hostStatusJSON struct {
	Address struct {
		SocketAddress *struct {
			Address   string    `json:"address"`
			PortValue looseUint `json:"portvalue"`
			NamedPort string    `json:"namedport"`
		} `json:"socketaddress"`
		Pipe *struct {
			Path string `json:"path"`
		} `json:"pipe"`
		EnvoyInternalAddress *struct {
			ServerListenerName string `json:"serverlistenername"`
			EndpointID         string `json:"endpointid"`
		} `json:"envoyinternaladdress"`
	} `json:"address"`
	Stats []struct {
		Name  string    `json:"name"`
		Value looseUint `json:"value"` // absent when zero
	} `json:"stats"`
	HealthStatus struct {
		FailedActiveHealthCheck    bool            `json:"failedactivehealthcheck"`
		FailedOutlierCheck         bool            `json:"failedoutliercheck"`
		FailedActiveDegradedCheck  bool            `json:"failedactivedegradedcheck"`
		PendingDynamicRemoval      bool            `json:"pendingdynamicremoval"`
		PendingActiveHC            bool            `json:"pendingactivehc"`
		ExcludedViaImmediateHCFail bool            `json:"excludedviaimmediatehcfail"`
		ActiveHCTimeout            bool            `json:"activehctimeout"`
		EDSHealthStatus            json.RawMessage `json:"edshealthstatus"`
	} `json:"healthstatus"`
	SuccessRate *struct {
		Value looseFloat `json:"value"`
	} `json:"successrate"`
	Weight   looseUint `json:"weight"`
	Locality *struct {
		Zone string `json:"zone"`
	} `json:"locality"`
}

// edsHealthNames are core.v3.HealthStatus by number, for output that prints enums as numbers.
var edsHealthNames = []string{"UNKNOWN", "HEALTHY", "UNHEALTHY", "DRAINING", "TIMEOUT", "DEGRADED"}

// ParseClustersJSON parses GET /clusters?format=json. Field names may be snake_case or
// camelCase (Envoy releases and tools differ, and real captures mix both), 64-bit values may be
// strings, and a stat without "value" is zero. Health booleans become the flag names of the text
// format (failed_active_hc, failed_outlier_check, degraded_active_hc, pending_dynamic_removal,
// pending_active_hc, excluded_via_immediate_hc_fail, active_hc_timeout), and an EDS health
// status of UNHEALTHY, DRAINING or TIMEOUT adds failed_eds_health and DEGRADED adds
// degraded_eds_health, as Envoy itself does.
func ParseClustersJSON(data []byte) (*UpstreamClusters, error) {
	norm, err := looseKeysJSON(data)
	if err != nil {
		return nil, fmt.Errorf("/clusters?format=json: %w", err)
	}
	var doc clustersJSON
	if err := json.Unmarshal(norm, &doc); err != nil {
		return nil, fmt.Errorf("/clusters?format=json: %w", err)
	}
	b := newClustersBuilder()
	for _, cs := range doc.ClusterStatuses {
		ci := b.cluster(cs.Name)
		c := &b.out.Clusters[ci]
		c.AddedViaAPI = c.AddedViaAPI || cs.AddedViaAPI
		if cs.CircuitBreakers != nil {
			for _, t := range cs.CircuitBreakers.Thresholds {
				cb := b.breaker(ci, thresholdPriority(t.Priority))
				cb.MaxConnections = clampUint32(t.MaxConnections)
				cb.MaxPendingRequests = clampUint32(t.MaxPendingRequests)
				cb.MaxRequests = clampUint32(t.MaxRequests)
				cb.MaxRetries = clampUint32(t.MaxRetries)
			}
		}
		for _, hs := range cs.HostStatuses {
			h := b.host(ci, jsonHostAddress(hs))
			fillHostFromJSON(h, hs)
		}
	}
	return b.result(), nil
}

func thresholdPriority(raw json.RawMessage) string {
	p := strings.ToUpper(looseString(raw))
	switch p {
	case "", "0":
		return "DEFAULT"
	case "1":
		return "HIGH"
	}
	return p
}

func clampUint32(v *looseUint) *uint32 {
	if v == nil {
		return nil
	}
	u := uint32(1<<32 - 1)
	if *v < looseUint(u) {
		u = uint32(*v)
	}
	return &u
}

func jsonHostAddress(hs hostStatusJSON) string {
	a := hs.Address
	switch {
	case a.SocketAddress != nil:
		port := strconv.FormatUint(uint64(a.SocketAddress.PortValue), 10)
		if a.SocketAddress.NamedPort != "" {
			port = a.SocketAddress.NamedPort
		}
		return net.JoinHostPort(a.SocketAddress.Address, port)
	case a.Pipe != nil:
		return a.Pipe.Path
	case a.EnvoyInternalAddress != nil:
		return "envoy://" + a.EnvoyInternalAddress.ServerListenerName + "/" +
			a.EnvoyInternalAddress.EndpointID
	}
	return ""
}

func fillHostFromJSON(h *UpstreamHost, hs hostStatusJSON) {
	for _, st := range hs.Stats {
		if st.Name == "" {
			continue
		}
		if h.Stats == nil {
			h.Stats = map[string]uint64{}
		}
		h.Stats[st.Name] = uint64(st.Value)
	}
	hh := hs.HealthStatus
	var flags []string
	add := func(set bool, flag string) {
		if set {
			flags = append(flags, flag)
		}
	}
	add(hh.FailedActiveHealthCheck, "failed_active_hc")
	add(hh.FailedOutlierCheck, "failed_outlier_check")
	add(hh.FailedActiveDegradedCheck, "degraded_active_hc")
	add(hh.PendingDynamicRemoval, "pending_dynamic_removal")
	add(hh.PendingActiveHC, "pending_active_hc")
	add(hh.ExcludedViaImmediateHCFail, "excluded_via_immediate_hc_fail")
	add(hh.ActiveHCTimeout, "active_hc_timeout")
	eds := strings.ToUpper(looseString(hh.EDSHealthStatus))
	if n, err := strconv.Atoi(eds); err == nil && n >= 0 && n < len(edsHealthNames) {
		eds = edsHealthNames[n]
	}
	switch eds {
	case "UNHEALTHY", "DRAINING", "TIMEOUT":
		flags = append(flags, "failed_eds_health")
	case "DEGRADED":
		flags = append(flags, "degraded_eds_health")
	}
	h.HealthFlags = flags
	h.EDSHealth = eds
	if hs.SuccessRate != nil && hs.SuccessRate.Value >= 0 {
		h.SuccessRate = float64(hs.SuccessRate.Value)
	}
	h.Weight = uint32(min(uint64(hs.Weight), 1<<32-1))
	if hs.Locality != nil {
		h.Zone = hs.Locality.Zone
	}
}
