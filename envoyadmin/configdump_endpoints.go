package envoyadmin

import (
	"strings"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
)

// dumpEndpointsSpec keeps what Endpoint reports; of the endpoint metadata only the tlsMode that
// Istio's auto mTLS matches on is read.
var dumpEndpointsSpec = dumpSpec{
	"cluster_name": nil,
	"endpoints": {
		"locality": nil,
		"lb_endpoints": {
			"endpoint":              {"address": dumpAddressSpec},
			"health_status":         nil,
			"load_balancing_weight": nil,
			"metadata": {"filter_metadata": {
				"envoy.transport_socket_match": {"tlsMode": nil},
				"istio":                        {"tlsMode": nil},
			}},
		},
	},
}

// endpoints summarises one ClusterLoadAssignment of an EndpointsConfigDump.
func (d *dumpDecoder) endpoints(raw []byte) (*ClusterEndpoints, error) {
	var cla endpointv3.ClusterLoadAssignment
	if err := d.decode(raw, dumpEndpointsSpec, &cla); err != nil {
		return nil, err
	}
	out := &ClusterEndpoints{Cluster: cla.GetClusterName()}
	for _, le := range cla.GetEndpoints() {
		loc := le.GetLocality()
		locality := strings.TrimRight(loc.GetRegion()+"/"+loc.GetZone()+"/"+loc.GetSubZone(), "/")
		for _, e := range le.GetLbEndpoints() {
			md := e.GetMetadata().GetFilterMetadata()
			tlsMode := md["envoy.transport_socket_match"].GetFields()["tlsMode"].GetStringValue()
			if tlsMode == "" {
				tlsMode = md["istio"].GetFields()["tlsMode"].GetStringValue()
			}
			out.Endpoints = append(out.Endpoints, Endpoint{
				Address:      dumpAddress(e.GetEndpoint().GetAddress()),
				HealthStatus: e.GetHealthStatus().String(),
				Weight:       e.GetLoadBalancingWeight().GetValue(),
				Locality:     locality,
				TLSMode:      tlsMode,
			})
		}
	}
	return out, nil
}
