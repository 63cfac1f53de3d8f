// Package rbac implements `kubectl mesh rbac`: the RBAC the live commands need, as manifests
// to apply, or checked against the current user with SelfSubjectAccessReviews.
package rbac

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	authv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mesh/kubectl-mesh/collect"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
)

const example = `  # The ClusterRoles why-slow and capture need, to review and apply
  kubectl mesh rbac | kubectl apply -f -
  kubectl create rolebinding mesh-diagnose -n bookinfo --clusterrole=kubectl-mesh --user=alice

  # Check what the current user may do in a namespace (exit 1 when something is refused)
  kubectl mesh rbac --check -n bookinfo`

// Options holds the flags and dependencies of `rbac`.
type Options struct {
	genericiooptions.IOStreams
	ConfigFlags *genericclioptions.ConfigFlags

	Output string
	Check  bool
	Name   string

	Client    kubernetes.Interface
	Namespace string
}

// NewCmd returns the `rbac` command.
func NewCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, ConfigFlags: flags}
	cmd := &cobra.Command{
		Use:   "rbac [--check]",
		Short: "Print the RBAC the live diagnosis needs, or check the current user's permissions",
		Long: `rbac prints two ClusterRoles: NAME, with what the diagnosis reads in a namespace (bind it with a
RoleBinding per namespace, or a ClusterRoleBinding for -A), and NAME-nodes, with the kubelet
metrics it reads through the API server's node proxy (cluster-scoped). Every permission is
optional but pods get: without one, the diagnosis goes on and says what it could not read.`,
		Example: example,
		RunE:    cli.RunE(o),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "Output format: yaml (default) or json; with --check, json or yaml report the checks")
	cmd.Flags().BoolVar(&o.Check, "check", false, "Check each permission for the current user in the namespace instead of printing roles")
	cmd.Flags().StringVar(&o.Name, "name", "kubectl-mesh", "Name of the ClusterRoles")
	return cmd
}

// Complete builds the client of --check, unless a test set it.
func (o *Options) Complete(args []string) error {
	if err := cli.NoArgs("rbac", args); err != nil {
		return err
	}
	if !o.Check || o.Client != nil {
		return nil
	}
	c, err := cli.Connect(o.ConfigFlags, 0, 0, "")
	if err != nil {
		return err
	}
	o.Client, o.Namespace = c.Client, c.Namespace
	return nil
}

// Validate checks -o.
func (o *Options) Validate() error { return cli.ValidateOutput(o.Output) }

// Run prints the roles, or checks the permissions with --check.
func (o *Options) Run(ctx context.Context) error {
	if o.Check {
		return o.RunCheck(ctx)
	}
	return o.RunPrint()
}

// RunPrint prints the roles as a YAML stream (or a JSON List).
func (o *Options) RunPrint() error {
	ns, cl := collect.Roles(o.Name)
	if o.Output == cli.OutputJSON {
		_, err := cli.PrintStructured(o.Out, o.Output, map[string]any{"apiVersion": "v1", "kind": "List", "items": []any{ns, cl}})
		return err
	}
	for i, obj := range []any{ns, cl} {
		b, err := yaml.Marshal(obj)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(o.Out, "---")
		}
		if _, err := o.Out.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// Check is the answer for one permission.
type Check struct {
	Permission string `json:"permission"`
	Allowed    bool   `json:"allowed"`
	Namespace  string `json:"namespace,omitempty"`
	Why        string `json:"why"`
}

// RunCheck asks the API server, with one SelfSubjectAccessReview per permission, what the
// current user may do, prints the answers and exits 1 when something is refused.
func (o *Options) RunCheck(ctx context.Context) error {
	var checks []Check
	denied := 0
	for _, p := range collect.Permissions() {
		res, sub, _ := strings.Cut(p.Resource, "/")
		attr := &authv1.ResourceAttributes{Group: p.Group, Resource: res, Subresource: sub, Verb: p.Verb}
		ns := ""
		if !p.ClusterScoped {
			attr.Namespace, ns = o.Namespace, o.Namespace
		}
		review, err := o.Client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
			&authv1.SelfSubjectAccessReview{Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attr}}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("asking the API server what you may do: %w; check that the cluster is reachable", err)
		}
		c := Check{Permission: p.Verb + " " + qualified(p), Allowed: review.Status.Allowed, Namespace: ns, Why: p.Why}
		if !c.Allowed {
			denied++
		}
		checks = append(checks, c)
	}
	if done, err := cli.PrintStructured(o.Out, o.Output, checks); done {
		if err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PERMISSION\tNAMESPACE\tALLOWED\tNEEDED TO")
		for _, c := range checks {
			ns := c.Namespace
			if ns == "" {
				ns = "(cluster)"
			}
			allowed := "yes"
			if !c.Allowed {
				allowed = "no"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Permission, ns, allowed, c.Why)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if denied > 0 {
			fmt.Fprintf(o.Out, "\n%d of %d refused: the diagnosis goes on without them. `kubectl mesh rbac` prints the ClusterRoles that grant them.\n", denied, len(checks))
		}
	}
	if denied > 0 {
		return &cli.ExitError{Code: cli.ExitFindings}
	}
	return nil
}

func qualified(p collect.Permission) string {
	if p.Group == "" {
		return p.Resource
	}
	res, sub, ok := strings.Cut(p.Resource, "/")
	if ok {
		return res + "." + p.Group + "/" + sub
	}
	return p.Resource + "." + p.Group
}
