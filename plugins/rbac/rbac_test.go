package rbac

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mesh/kubectl-mesh/collect"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/golden"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

func TestPrint(t *testing.T) {
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	o := &Options{IOStreams: streams, Name: "kubectl-mesh"}
	if err := o.RunPrint(); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/rbac.golden.yaml", out.Bytes())
}

// TestRolesGrantEveryPermission applies the printed roles on a real API server, binds them to a
// user, and checks with --check that the user may do everything the tool does; a user without
// them is refused and the command exits 1 naming what is missing.
func TestRolesGrantEveryPermission(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	if err := (&Options{IOStreams: streams, Name: "kubectl-mesh"}).RunPrint(); err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, d := range strings.Split(out.String(), "\n---\n") {
		docs = append(docs, d)
	}
	if err := c.Apply(ctx, docs...); err != nil {
		t.Fatalf("applying the printed roles: %v", err)
	}
	for _, name := range []string{"kubectl-mesh", "kubectl-mesh-nodes"} {
		b := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "alice-" + name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"}},
		}
		if _, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(user string) ([]Check, error) {
		cfg, err := c.UserConfig(user)
		if err != nil {
			t.Fatal(err)
		}
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		streams, _, out, _ := genericiooptions.NewTestIOStreams()
		o := &Options{IOStreams: streams, Client: client, Namespace: "default", Output: "json"}
		err = o.RunCheck(ctx)
		var checks []Check
		if jerr := json.Unmarshal(out.Bytes(), &checks); jerr != nil {
			t.Fatalf("--check -o json: %v\n%s", jerr, out)
		}
		return checks, err
	}
	checks, err := check("alice")
	if err != nil {
		t.Errorf("alice, bound to the printed roles: %v", err)
	}
	if len(checks) != len(collect.Permissions()) {
		t.Errorf("%d checks, want one per permission (%d)", len(checks), len(collect.Permissions()))
	}
	for _, ch := range checks {
		if !ch.Allowed {
			t.Errorf("alice may not %s", ch.Permission)
		}
	}
	checks, err = check("bob")
	if cli.Code(err) != cli.ExitFindings {
		t.Errorf("bob without roles: err %v, want exit %d", err, cli.ExitFindings)
	}
	for _, ch := range checks {
		if ch.Allowed {
			t.Errorf("bob may %s without any role", ch.Permission)
		}
	}
}

func TestRolesAreValidRBAC(t *testing.T) {
	ns, cl := collect.Roles("x")
	for _, r := range []*rbacv1.ClusterRole{ns, cl} {
		b, err := yaml.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		for _, rule := range r.Rules {
			if len(rule.APIGroups) != 1 || len(rule.Resources) == 0 || len(rule.Verbs) == 0 {
				t.Errorf("rule %+v of %s", rule, b)
			}
		}
	}
}
