package inject

import "testing"

func TestNamespaceRevision(t *testing.T) {
	for _, tc := range []struct {
		labels map[string]string
		want   string
	}{
		{map[string]string{"istio-injection": "enabled"}, "default"},
		{map[string]string{"istio-injection": "enabled", "istio.io/rev": "1-30"}, "default"}, // Istio: the injection label wins
		{map[string]string{"istio.io/rev": "1-30"}, "1-30"},
		{map[string]string{"istio-injection": "disabled", "istio.io/rev": "1-30"}, ""},
		{nil, ""},
	} {
		if got := NamespaceRevision(tc.labels); got != tc.want {
			t.Errorf("NamespaceRevision(%v) = %q, want %q", tc.labels, got, tc.want)
		}
	}
}
