package mtls

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestSpread checks that a bounded sample of the mesh covers its namespaces before it takes a
// second pod of any: the first twenty pods alphabetically would all be one big namespace's.
func TestSpread(t *testing.T) {
	var pods []corev1.Pod
	add := func(ns string, n int) {
		for i := range n {
			pods = append(pods, corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("p%d", i)}})
		}
	}
	add("a-big", 30)
	add("b", 2)
	add("c", 1)
	names := func(ps []corev1.Pod) string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Namespace+"/"+p.Name)
		}
		return strings.Join(out, " ")
	}
	if got, want := names(spread(pods, 5)), "a-big/p0 b/p0 c/p0 a-big/p1 b/p1"; got != want {
		t.Errorf("spread 5 = %s, want %s", got, want)
	}
	if got := spread(pods, 20); len(got) != 20 || names(got[:4]) != "a-big/p0 b/p0 c/p0 a-big/p1" {
		t.Errorf("spread 20 = %s", names(got))
	}
	if got := spread(pods[:3], 20); len(got) != 3 {
		t.Errorf("fewer pods than the bound: %d", len(got))
	}
}
