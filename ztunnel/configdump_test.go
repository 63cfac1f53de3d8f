package ztunnel

import (
	"os"
	"path/filepath"
	"testing"
)

// TestParseRealConfigDump reads a real ztunnel dump (istioctl's testdata at Istio 1.30.3,
// testdata/ztunnel/SOURCES.md), in the object-keyed shape of ztunnel 1.22.
func TestParseRealConfigDump(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "testdata", "ztunnel", "istioctl-1.30.3-dump.json"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseConfigDump(b)
	if err != nil {
		t.Fatal(err)
	}
	w := d.Workload("bookinfo", "ratings-v1-6484c4d9bb-mdxm5")
	if w == nil || w.Protocol != "HBONE" || w.ServiceAccount != "bookinfo-ratings" || w.Node != "ambient-worker2" {
		t.Errorf("ratings: %+v", w)
	}
	if w := d.Workload("httpbin", "httpbin-65975d4c6f-jr69n"); w == nil || w.Protocol != "TCP" {
		t.Errorf("httpbin: %+v", w)
	}
	if d.Workload("bookinfo", "no-such-pod") != nil {
		t.Error("found a pod the dump does not hold")
	}
	if p, ok := d.Proxy("bookinfo", "productpage-v1-796f87b58-97bjk"); !ok || p.State != "Up" {
		t.Errorf("productpage's in-pod proxy: %+v, %v", p, ok)
	}
	if c, ok := d.Certificate("istio-system", "istiod"); !ok || c.State != "Available" {
		t.Errorf("istiod's certificate: %+v, %v", c, ok)
	}
}

func TestParseConfigDumpLists(t *testing.T) {
	d, err := ParseConfigDump([]byte(`{"workloads":[{"name":"web-0","namespace":"shop","protocol":"HBONE"}],"certificates":[{"identity":"spiffe://td/ns/shop/sa/web","state":"Unavailable: signing gRPC error"}],"workloadState":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	if d.Workload("shop", "web-0") == nil {
		t.Error("web-0 not found in a 1.23+ list")
	}
	if c, ok := d.Certificate("shop", "web"); !ok || c.State != "Unavailable: signing gRPC error" {
		t.Errorf("certificate %+v", c)
	}
	for _, bad := range []string{`[]`, `{"services":[]}`, `not json`} {
		if _, err := ParseConfigDump([]byte(bad)); err == nil {
			t.Errorf("%s read as a config dump", bad)
		}
	}
}
