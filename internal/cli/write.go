package cli

import (
	"errors"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
)

// AddDryRunFlag adds --dry-run as every command that changes a cluster takes it: client or
// server, and alone client, as kubectl's.
func AddDryRunFlag(f *pflag.FlagSet, p *string, usage string) {
	f.StringVar(p, "dry-run", "none", usage)
	f.Lookup("dry-run").NoOptDefVal = "client"
}

// ParseDryRun reads --dry-run, a bad value being the user's error.
func ParseDryRun(s string) (apply.DryRun, error) {
	d, err := apply.ParseDryRun(s)
	if err != nil {
		return "", UsageError("%v", err)
	}
	return d, nil
}

// ConnectWriter builds the clients of a command that applies objects: those of Connect and the
// REST mapper (reset after CRDs are installed).
func ConnectWriter(flags *genericclioptions.ConfigFlags) (*Clients, meta.ResettableRESTMapper, error) {
	c, err := Connect(flags, 0, 0, "")
	if err != nil {
		return nil, nil, err
	}
	m, err := flags.ToRESTMapper()
	if err != nil {
		return nil, nil, err
	}
	rm, ok := m.(meta.ResettableRESTMapper)
	if !ok {
		return nil, nil, errors.New("the REST mapper cannot be reset")
	}
	return c, rm, nil
}
