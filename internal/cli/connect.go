package cli

import (
	"fmt"
	"os"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Clients reach the cluster the kubeconfig flags name.
type Clients struct {
	// Namespace is the one of -n, else the kubeconfig context's, else "default".
	Namespace string
	Config    *rest.Config
	Client    kubernetes.Interface
	Dynamic   dynamic.Interface
}

// Connect builds the clients of a live command from the kubeconfig flags. A positive qps or
// burst replaces client-go's rate limit. offline, when not empty, is appended to the errors
// that ask for a kubeconfig, to say what the command can do without a cluster (for example
// "or diagnose a capture with --from DIR").
func Connect(flags *genericclioptions.ConfigFlags, qps float32, burst int, offline string) (*Clients, error) {
	hint := func(s string) string {
		if offline == "" {
			return s
		}
		return s + ", " + offline
	}
	loader := flags.ToRawKubeConfigLoader()
	if raw, err := loader.RawConfig(); err == nil && len(raw.Contexts) == 0 && stringFlag(flags.APIServer) == "" && os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		// Without this, client-go quietly falls back to localhost:8080.
		return nil, UsageError("no kubeconfig found: %s", hint("set KUBECONFIG or --kubeconfig to reach a cluster"))
	}
	ns, _, err := loader.Namespace()
	if err != nil {
		return nil, fmt.Errorf("namespace from the kubeconfig: %w; %s", err, hint("set --kubeconfig or KUBECONFIG"))
	}
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w; %s", err, hint("set --kubeconfig or KUBECONFIG"))
	}
	if qps > 0 {
		cfg.QPS = qps
	}
	if burst > 0 {
		cfg.Burst = burst
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return &Clients{Namespace: ns, Config: cfg, Client: client, Dynamic: dyn}, nil
}

func stringFlag(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
