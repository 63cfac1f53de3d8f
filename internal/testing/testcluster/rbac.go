package testcluster

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// UserWithRole grants user exactly rules, through a Role and RoleBinding named user in
// namespace, or through a ClusterRole and ClusterRoleBinding when namespace is "", and
// returns the user's rest.Config: for tests of what the tool does with fewer permissions
// than an admin has.
func (c *Cluster) UserWithRole(ctx context.Context, user, namespace string, rules ...rbacv1.PolicyRule) (*rest.Config, error) {
	meta := metav1.ObjectMeta{Name: user, Namespace: namespace}
	subjects := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
	rbac := c.Client.RbacV1()
	if namespace == "" {
		role := &rbacv1.ClusterRole{ObjectMeta: meta, Rules: rules}
		if _, err := rbac.ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("ClusterRole %s: %w", user, err)
		}
		binding := &rbacv1.ClusterRoleBinding{ObjectMeta: meta, Subjects: subjects,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: user}}
		if _, err := rbac.ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("ClusterRoleBinding %s: %w", user, err)
		}
	} else {
		role := &rbacv1.Role{ObjectMeta: meta, Rules: rules}
		if _, err := rbac.Roles(namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("Role %s/%s: %w", namespace, user, err)
		}
		binding := &rbacv1.RoleBinding{ObjectMeta: meta, Subjects: subjects,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user}}
		if _, err := rbac.RoleBindings(namespace).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("RoleBinding %s/%s: %w", namespace, user, err)
		}
	}
	return c.UserConfig(user)
}
