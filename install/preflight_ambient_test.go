package install

import (
	"context"
	"strings"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/install/check"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestAmbientPreflight(t *testing.T) {
	ambient, _ := NewProfile(ProfileAmbient, "")
	minimal, _ := NewProfile(ProfileMinimal, "")
	ns := func(level string) *corev1.Namespace {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: DefaultNamespace}}
		if level != "" {
			n.Labels = map[string]string{podSecurityEnforce: level}
		}
		return n
	}
	for _, tc := range []struct {
		name    string
		profile *Profile
		ns      *corev1.Namespace
		want    check.Status
		phrase  string
	}{
		{"sidecar profiles are not checked", minimal, ns("restricted"), "", ""},
		{"no namespace yet", ambient, nil, CheckOK, "does not exist yet"},
		{"privileged", ambient, ns("privileged"), CheckOK, "admits"},
		{"no level", ambient, ns(""), CheckOK, "none set"},
		{"baseline", ambient, ns("baseline"), CheckFailed, "enforces Pod Security level baseline"},
		{"restricted", ambient, ns("restricted"), CheckFailed, "enforces Pod Security level restricted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fake.NewClientset()
			if tc.ns != nil {
				c = fake.NewClientset(tc.ns)
			}
			got := (&Preflight{Client: c, Profile: tc.profile}).ambient(context.Background())
			if tc.want == "" {
				if len(got) != 0 {
					t.Errorf("checks %+v; want none", got)
				}
				return
			}
			if len(got) != 1 || got[0].Status != tc.want || !strings.Contains(got[0].Message, tc.phrase) {
				t.Fatalf("checks %+v; want %s saying %q", got, tc.want, tc.phrase)
			}
			if tc.want == CheckFailed && got[0].Fix != "kubectl label namespace istio-system pod-security.kubernetes.io/enforce=privileged --overwrite" {
				t.Errorf("fix %q", got[0].Fix)
			}
		})
	}
}

func TestAmbientProfileCharts(t *testing.T) {
	p, err := NewProfile(ProfileAmbient, "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range p.Charts() {
		names = append(names, c.Name+"="+c.Release)
	}
	if got := strings.Join(names, " "); got != "base=istio-base istiod=istiod cni=istio-cni ztunnel=ztunnel" {
		t.Errorf("charts %s", got)
	}
	for _, chart := range []string{ChartIstiod, ChartCNI, ChartZtunnel} {
		v, err := p.HelmValues(chart)
		if err != nil || v["profile"] != ProfileAmbient {
			t.Errorf("%s values %v (%v); want profile ambient", chart, v, err)
		}
	}
	p.Revision = "1-30"
	if err := p.Validate(); err == nil {
		t.Error("ambient with a revision validated")
	}
}
