package install

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CategoryAmbient holds the checks of what the ambient data plane needs of the cluster.
const CategoryAmbient = "ambient data plane"

// podSecurityEnforce is Pod Security Admission's label on a namespace.
const podSecurityEnforce = "pod-security.kubernetes.io/enforce"

// ambient checks that the namespace of istio-cni and ztunnel admits them: istio-cni's pods are
// privileged and ztunnel's add NET_ADMIN, SYS_ADMIN and NET_RAW, which Pod Security's baseline
// and restricted levels refuse.
func (pf *Preflight) ambient(ctx context.Context) []Check {
	if !pf.Profile.Ambient {
		return nil
	}
	ns := pf.Profile.Namespace
	n, err := pf.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return []Check{{Category: CategoryAmbient, Status: CheckOK, Message: fmt.Sprintf("namespace %s does not exist yet: it is created without a Pod Security level, which admits istio-cni's privileged pods", ns)}}
	case err != nil:
		return []Check{{Category: CategoryAmbient, Status: CheckWarning, Message: fmt.Sprintf("namespace %s could not be read to check its Pod Security level: %v", ns, err)}}
	}
	level := n.Labels[podSecurityEnforce]
	if level == "baseline" || level == "restricted" {
		return []Check{{Category: CategoryAmbient, Status: CheckFailed,
			Message: fmt.Sprintf("namespace %s enforces Pod Security level %s, which refuses istio-cni's privileged pods and ztunnel's NET_ADMIN and SYS_ADMIN: neither would start", ns, level),
			Fix:     fmt.Sprintf("kubectl label namespace %s %s=privileged --overwrite", ns, podSecurityEnforce)}}
	}
	if level == "" {
		level = "none set"
	}
	return []Check{{Category: CategoryAmbient, Status: CheckOK, Message: fmt.Sprintf("namespace %s admits istio-cni's privileged pods (Pod Security level: %s); a cluster-wide admission policy (OPA, Kyverno, OpenShift SCCs) may still refuse them", ns, level)}}
}
