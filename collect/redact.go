package collect

import (
	"regexp"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// secretEnvName matches the names of environment variables that usually hold a credential.
var secretEnvName = regexp.MustCompile(`(?i)(token|secret|passw|pwd|credential|api_?key|private_?key|auth|cookie|session)`)

// lastApplied is kubectl's copy of the applied object: the spec again, env values included.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// redactPod removes from a pod what may hold credentials and says nothing about its proxy: the
// values of environment variables whose names say they are credentials (or whose values look
// like tokens), and kubectl's last-applied copy of the spec. It changes pod in place.
func redactPod(pod *corev1.Pod) {
	delete(pod.Annotations, lastApplied)
	redactEnv := func(env []corev1.EnvVar) {
		for i := range env {
			v := env[i].Value
			if v == "" {
				continue
			}
			if secretEnvName.MatchString(env[i].Name) {
				env[i].Value = envoyadmin.Redacted
			} else {
				env[i].Value = string(envoyadmin.RedactTokens([]byte(v)))
			}
		}
	}
	for i := range pod.Spec.InitContainers {
		redactEnv(pod.Spec.InitContainers[i].Env)
	}
	for i := range pod.Spec.Containers {
		redactEnv(pod.Spec.Containers[i].Env)
	}
	for i := range pod.Spec.EphemeralContainers {
		redactEnv(pod.Spec.EphemeralContainers[i].Env)
	}
}
