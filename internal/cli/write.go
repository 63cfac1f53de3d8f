package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
)

// WriteFlags are the flags and clients every command that changes a cluster shares, embedded in
// its Options: --dry-run (client or server, and alone client, as kubectl's), --force-conflicts
// and -o, and the clients that apply with server-side apply.
type WriteFlags struct {
	DryRunFlag     string
	ForceConflicts bool
	Output         string

	// DryRun is --dry-run, read by Complete.
	DryRun apply.DryRun
	// Namespace is -n, else the kubeconfig context's, else "default".
	Namespace string
	// The clients, built by Complete unless a test set Client.
	Client     kubernetes.Interface
	Dynamic    dynamic.Interface
	Mapper     meta.ResettableRESTMapper // reset after CRDs are installed
	RESTConfig *rest.Config
}

// WriteUsage is the help of the shared flags, which says what each command does with them; an
// empty ForceConflicts leaves that flag out (the command takes nothing over).
type WriteUsage struct {
	DryRun, ForceConflicts, Output string
}

// AddFlags adds the shared flags.
func (w *WriteFlags) AddFlags(f *pflag.FlagSet, u WriteUsage) {
	f.StringVar(&w.DryRunFlag, "dry-run", "none", u.DryRun)
	f.Lookup("dry-run").NoOptDefVal = "client"
	if u.ForceConflicts != "" {
		f.BoolVar(&w.ForceConflicts, "force-conflicts", false, u.ForceConflicts)
	}
	if u.Output == "" {
		u.Output = "Output format: json or yaml (default: text)"
	}
	f.StringVarP(&w.Output, "output", "o", "", u.Output)
}

// Complete reads --dry-run, a bad value being the user's error, and builds the clients, unless
// a test set them or the command needs no cluster: clientDryRunOffline says that a client dry
// run of this command only prints. offlineHint, when not empty, is added to a kubeconfig error
// to say what works without one.
func (w *WriteFlags) Complete(flags *genericclioptions.ConfigFlags, clientDryRunOffline bool, offlineHint string) error {
	d, err := apply.ParseDryRun(w.DryRunFlag)
	if err != nil {
		return UsageError("%v", err)
	}
	w.DryRun = d
	if w.Client != nil {
		return nil // set by a test
	}
	if clientDryRunOffline && d == apply.DryRunClient {
		w.Namespace = namespaceOf(flags)
		return nil
	}
	c, mapper, err := connectWriter(flags)
	if err != nil {
		if offlineHint != "" {
			return fmt.Errorf("%w; %s", err, offlineHint)
		}
		return err
	}
	w.Namespace, w.Client, w.Dynamic, w.Mapper, w.RESTConfig = c.Namespace, c.Client, c.Dynamic, mapper, c.Config
	return nil
}

// Validate checks -o.
func (w *WriteFlags) Validate() error { return ValidateOutput(w.Output) }

// namespaceOf is -n or the kubeconfig context's namespace, else "default", for a command that
// prints objects without reaching the cluster.
func namespaceOf(flags *genericclioptions.ConfigFlags) string {
	if flags != nil {
		if ns, _, err := flags.ToRawKubeConfigLoader().Namespace(); err == nil && ns != "" {
			return ns
		}
	}
	return "default"
}

// connectWriter builds the clients of a command that applies objects: those of Connect and the
// REST mapper (reset after CRDs are installed).
func connectWriter(flags *genericclioptions.ConfigFlags) (*Clients, meta.ResettableRESTMapper, error) {
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
