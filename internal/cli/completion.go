package cli

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
)

// completionTimeout bounds the API calls of one completion: a shell waits on it.
const completionTimeout = 3 * time.Second

// workloadKinds are the TYPE/ prefixes the live commands take, and how to list their names.
var workloadKinds = map[string]func(context.Context, kubernetes.Interface, string) ([]string, error){
	"pod/": func(ctx context.Context, c kubernetes.Interface, ns string) ([]string, error) {
		l, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return names(l, err, func(l *corev1.PodList) []metav1.Object { return objects(l.Items) })
	},
	"deploy/": func(ctx context.Context, c kubernetes.Interface, ns string) ([]string, error) {
		l, err := c.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		return names(l, err, func(l *appsv1.DeploymentList) []metav1.Object { return objects(l.Items) })
	},
	"sts/": func(ctx context.Context, c kubernetes.Interface, ns string) ([]string, error) {
		l, err := c.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
		return names(l, err, func(l *appsv1.StatefulSetList) []metav1.Object { return objects(l.Items) })
	},
	"svc/": func(ctx context.Context, c kubernetes.Interface, ns string) ([]string, error) {
		l, err := c.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
		return names(l, err, func(l *corev1.ServiceList) []metav1.Object { return objects(l.Items) })
	},
}

// objects turns a list's items into their metadata.
func objects[T any, P interface {
	*T
	metav1.Object
}](items []T) []metav1.Object {
	out := make([]metav1.Object, len(items))
	for i := range items {
		out[i] = P(&items[i])
	}
	return out
}

// names returns the names of a list's items, or the list's error.
func names[L any](list L, err error, items func(L) []metav1.Object) ([]string, error) {
	if err != nil {
		return nil, err
	}
	var out []string
	for _, o := range items(list) {
		out = append(out, o.GetName())
	}
	return out, nil
}

// completionClient connects quietly: a completion that cannot reach the cluster offers nothing.
func completionClient(flags *genericclioptions.ConfigFlags) (kubernetes.Interface, string, bool) {
	c, err := Connect(flags, 0, 0, "")
	if err != nil {
		return nil, "", false
	}
	return c.Client, c.Namespace, true
}

// CompleteTargets completes the pod targets of why-slow and capture from the cluster: pod
// names (as bare NAME and pod/NAME), and the names after deploy/, sts/ and svc/.
func CompleteTargets(flags *genericclioptions.ConfigFlags, kinds bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		client, ns, ok := completionClient(flags)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
		defer cancel()
		prefix := "pod/"
		if i := strings.IndexByte(toComplete, '/'); i >= 0 {
			prefix = toComplete[:i+1]
			if prefix == "po/" || prefix == "pods/" {
				prefix = "pod/"
			}
		}
		list, known := workloadKinds[prefix]
		if !known || !kinds && prefix != "pod/" {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		names, err := list(ctx, client, ns)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, n := range names {
			if strings.Contains(toComplete, "/") {
				out = append(out, toComplete[:strings.IndexByte(toComplete, '/')+1]+n)
			} else {
				out = append(out, n)
			}
		}
		if kinds && !strings.Contains(toComplete, "/") {
			for k := range workloadKinds {
				out = append(out, k)
			}
		}
		sort.Strings(out)
		directive := cobra.ShellCompDirectiveNoFileComp
		if kinds && !strings.Contains(toComplete, "/") {
			directive |= cobra.ShellCompDirectiveNoSpace // after "deploy/" comes a name
		}
		return out, directive
	}
}

// CompleteNamespaces completes a namespace argument or -n from the cluster.
func CompleteNamespaces(flags *genericclioptions.ConfigFlags) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		client, _, ok := completionClient(flags)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
		defer cancel()
		l, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		out, err := names(l, err, func(l *corev1.NamespaceList) []metav1.Object { return objects(l.Items) })
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		sort.Strings(out)
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// CompleteServices completes a Service name of the namespace.
func CompleteServices(flags *genericclioptions.ConfigFlags) cobra.CompletionFunc {
	return completeNames(flags, workloadKinds["svc/"])
}

// CompleteNodes completes node names.
func CompleteNodes(flags *genericclioptions.ConfigFlags) cobra.CompletionFunc {
	return completeNames(flags, func(ctx context.Context, c kubernetes.Interface, _ string) ([]string, error) {
		l, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		return names(l, err, func(l *corev1.NodeList) []metav1.Object { return objects(l.Items) })
	})
}

func completeNames(flags *genericclioptions.ConfigFlags, list func(context.Context, kubernetes.Interface, string) ([]string, error)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		client, ns, ok := completionClient(flags)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
		defer cancel()
		names, err := list(ctx, client, ns)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		sort.Strings(names)
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
