package evidence

import (
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/internal/lazyregexp"
)

// A capture leaves the cluster: users attach it to tickets. It never holds a private key, a
// token or a password (README "Evidence from strangers"); what is redacted keeps its name, so
// a reader still sees that it was there.

// secretName matches the names of environment variables, annotations and flags that usually
// hold a credential: DB_PASSWORD, SMTP_PASS, PASSPHRASE, SENTRY_DSN, AWS_SECRET_ACCESS_KEY,
// GITHUB_TOKEN, CREDS, DATABASE_URL, MONGO_URI.
var secretName = lazyregexp.New(`(?i)(token|secret|passw|passphrase|(^|[_-])pass($|[_-])|pwd|credential|(^|[_-])creds?($|[_-])|api[_-]?key|private[_-]?key|(^|[_-])key$|auth|cookie|session|dsn|database[_-]?url|mongo[_-]?ur[il]|conn(ection)?[_-]?str)`)

// lastApplied is kubectl's copy of the applied object: the spec again, env values included.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// RedactPod removes from a pod what may hold credentials and says nothing about its proxy: the
// values of environment variables and annotations whose names say they are credentials,
// credentials in any other value and in containers' command and args, and kubectl's
// last-applied copy of the spec. It changes pod in place.
func RedactPod(pod *corev1.Pod) {
	pod.Annotations = redactAnnotations(pod.Annotations)
	redactContainer := func(env []corev1.EnvVar, command, args []string) {
		for i := range env {
			if v := env[i].Value; v != "" {
				env[i].Value = redactValue(env[i].Name, v)
			}
		}
		redactArgs(command)
		redactArgs(args)
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		redactContainer(c.Env, c.Command, c.Args)
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		redactContainer(c.Env, c.Command, c.Args)
	}
	for i := range pod.Spec.EphemeralContainers {
		c := &pod.Spec.EphemeralContainers[i]
		redactContainer(c.Env, c.Command, c.Args)
	}
}

// redactValue redacts a named value: whole when its name says it is a credential, else the
// credentials in it.
func redactValue(name, v string) string {
	if secretName.MatchString(name) {
		return envoyadmin.Redacted
	}
	return string(envoyadmin.RedactTokens([]byte(v)))
}

// redactAnnotations drops kubectl's last-applied copy and redacts the other values.
func redactAnnotations(a map[string]string) map[string]string {
	delete(a, lastApplied)
	for k, v := range a {
		// An annotation's key is a domain and a name: the name says what the value is.
		name := k[strings.LastIndexByte(k, '/')+1:]
		a[k] = redactValue(name, v)
	}
	return a
}

// redactArgs redacts credentials in a command line: "--password=x" and "--token x" (the value
// in the next argument), and any credential RedactTokens finds.
func redactArgs(args []string) {
	for i, a := range args {
		flag, _, hasValue := strings.Cut(a, "=")
		isFlag := strings.HasPrefix(flag, "-") && secretName.MatchString(strings.TrimLeft(flag, "-"))
		switch {
		case isFlag && hasValue:
			args[i] = flag + "=" + envoyadmin.Redacted
		case isFlag && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-"):
			args[i+1] = envoyadmin.Redacted
		default:
			args[i] = string(envoyadmin.RedactTokens([]byte(a)))
		}
	}
}

// RedactFile is the last pass over every file a capture writes: credentials in any text that
// is not a stats sample (stats hold names and numbers, and are the largest files).
func RedactFile(name string, b []byte) []byte {
	switch name {
	case StatsProm, Stats2Prom, StatsText, Stats2Text, StatsJSON, Stats2JSON,
		Cadvisor, Cadvisor2, Node, Node2, ZtunnelProm, ZtunnelProm2, ZtunnelCadvisor, ZtunnelCadvisor2:
		return b
	case ConfigDump:
		return envoyadmin.RedactTokens(envoyadmin.RedactConfigDump(b))
	}
	if Known(name) && strings.HasPrefix(name, "hop-") {
		return b
	}
	return envoyadmin.RedactTokens(b)
}

// RedactObjects drops kubectl's last-applied copy from each object of a list and redacts its
// other annotations, as a pod's (RedactPod).
func RedactObjects(items any) {
	list, _ := items.([]any)
	for _, it := range list {
		obj, _ := it.(map[string]any)
		meta, _ := obj["metadata"].(map[string]any)
		ann, _ := meta["annotations"].(map[string]any)
		if ann == nil {
			continue
		}
		strs := make(map[string]string, len(ann))
		for k, v := range ann {
			if s, ok := v.(string); ok {
				strs[k] = s
			}
		}
		strs = redactAnnotations(strs)
		out := make(map[string]any, len(strs))
		for k, v := range strs {
			out[k] = v
		}
		meta["annotations"] = out
	}
}
