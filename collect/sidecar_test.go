package collect

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCheckSidecar(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	tests := []struct {
		name    string
		spec    corev1.PodSpec
		wantErr bool
	}{
		{"sidecar container", corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}, {Name: "istio-proxy"}}}, false},
		{"native sidecar", corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "istio-proxy", RestartPolicy: &always}},
			Containers:     []corev1.Container{{Name: "app"}},
		}, false},
		{"plain init container is not a sidecar", corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "istio-proxy"}},
			Containers:     []corev1.Container{{Name: "app"}},
		}, true},
		{"no sidecar", corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}, Spec: tc.spec}
			err := checkSidecar(pod)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "pod shop/web has no istio-proxy sidecar and is not in the ambient mesh: ") {
				t.Errorf("err = %q, want it to name the pod and the missing sidecar", err)
			}
		})
	}
}
