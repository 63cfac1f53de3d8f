// Package istioctl is the install engine beside Helm's: it writes the profile as an
// IstioOperator, with the user's overrides, and runs the user's istioctl install on it.
package istioctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mesh/kubectl-mesh/install"
	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
)

// DefaultOperatorFile is where the IstioOperator is written when Engine.OperatorFile is empty.
const DefaultOperatorFile = "istio-operator.yaml"

// ErrNoIstioctl is returned, wrapped, when istioctl is not on PATH: the IstioOperator is
// written and the user can run it.
var ErrNoIstioctl = errors.New("istioctl is not on PATH")

// Engine installs with istioctl.
type Engine struct {
	// Kubeconfig and Context are passed on to istioctl when set.
	Kubeconfig, Context string
	// OperatorFile is where the IstioOperator is written (DefaultOperatorFile when empty).
	OperatorFile string
	DryRun       apply.DryRun
	// Progress receives istioctl's output and the command run (stderr); Manifests the
	// IstioOperator of a client dry run.
	Progress, Manifests io.Writer
	// LookPath finds istioctl (exec.LookPath when nil).
	LookPath func(string) (string, error)
}

// Operator is the profile's IstioOperator with the overrides under the key "operator".
func Operator(p *install.Profile, o install.Overrides) ([]byte, error) {
	op := p.IstioOperator()
	spec, _, _ := unstructured.NestedMap(op.Object, "spec")
	merged, err := o.Merge(install.KeyOperator, spec)
	if err != nil {
		return nil, err
	}
	op.Object["spec"] = merged
	return yaml.Marshal(op.Object)
}

// Install writes the IstioOperator and runs istioctl install -f on it; a client dry run only
// prints it, a server dry run passes --dry-run. It returns the file written.
func (e *Engine) Install(ctx context.Context, p *install.Profile, o install.Overrides) (string, error) {
	b, err := Operator(p, o)
	if err != nil {
		return "", err
	}
	if e.DryRun == apply.DryRunClient {
		_, err := fmt.Fprintf(e.Manifests, "---\n%s", b)
		return "", err
	}
	path := e.OperatorFile
	if path == "" {
		path = DefaultOperatorFile
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return "", fmt.Errorf("writing the IstioOperator: %w", err)
	}
	look := e.LookPath
	if look == nil {
		look = exec.LookPath
	}
	istioctl, err := look("istioctl")
	if err != nil {
		return path, fmt.Errorf("%w: the IstioOperator is in %s; install istioctl %s and run istioctl install -f %s, or use --engine helm", ErrNoIstioctl, path, p.Version, path)
	}
	args := e.args(path)
	fmt.Fprintf(e.Progress, "running %s %s\n", istioctl, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, istioctl, args...)
	cmd.Stdout, cmd.Stderr = e.Progress, e.Progress
	if err := cmd.Run(); err != nil {
		return path, fmt.Errorf("istioctl install -f %s: %w", filepath.Base(path), err)
	}
	return path, nil
}

func (e *Engine) args(path string) []string {
	args := []string{"install", "-y", "-f", path}
	if e.DryRun == apply.DryRunServer {
		args = append(args, "--dry-run")
	}
	if e.Kubeconfig != "" {
		args = append(args, "--kubeconfig", e.Kubeconfig)
	}
	if e.Context != "" {
		args = append(args, "--context", e.Context)
	}
	return args
}
