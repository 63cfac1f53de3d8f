package collect

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-mesh/kubectl-mesh/nodeinfo"
)

// maxScrapeAge bounds how old a shared scrape of a node's cAdvisor may be for a capture's
// sample: at most half the window, so a capture's two samples never share one scrape.
func maxScrapeAge(window time.Duration) time.Duration { return min(window/2, 5*time.Second) }

// nodeScrapes shares the kubelets' /metrics/cadvisor among the captures of a sweep: a node's
// output (megabytes on a busy node) is read once per maxScrapeAge for all its pods instead of
// twice per pod, and cut into pods once. cAdvisor stamps each series with the time it read
// it, so a pod's rates stay exact whichever scrape its samples came from.
type nodeScrapes struct {
	mu     sync.Mutex
	byNode map[string]*nodeScrape
	// denied is the refusal of the node proxy: nodes/proxy is cluster-scoped, so one node's
	// refusal is every node's.
	denied error
}

type nodeScrape struct {
	mu   sync.Mutex
	at   time.Time
	pods map[string][]byte
	// err is the node's failure: its kubelet is not reached through the API server, for this
	// sweep.
	err error
}

// errNodeProxyForbidden is the node proxy refused by RBAC.
var errNodeProxyForbidden = errors.New("the kubelet's metrics through the node proxy are forbidden: needs get on nodes/proxy (cluster-scoped, a ClusterRole)")

// podCadvisor returns the cAdvisor lines of a pod from a scrape of its node at most maxAge old,
// scraping the node when there is none. A nil cache scrapes every time.
func (c *KubeCache) podCadvisor(ctx context.Context, client kubernetes.Interface, node, ns, pod string, maxAge time.Duration) ([]byte, error) {
	if c == nil {
		b, err := scrapeCadvisor(ctx, client, node)
		if err != nil {
			return nil, err
		}
		return nodeinfo.FilterCadvisor(b, ns, pod), nil
	}
	n := &c.nodes
	n.mu.Lock()
	if n.denied != nil {
		n.mu.Unlock()
		return nil, n.denied
	}
	if n.byNode == nil {
		n.byNode = map[string]*nodeScrape{}
	}
	e := n.byNode[node]
	if e == nil {
		e = &nodeScrape{}
		n.byNode[node] = e
	}
	n.mu.Unlock()

	e.mu.Lock() // the pods of a node wait for one scrape, not one each
	defer e.mu.Unlock()
	if e.err != nil {
		return nil, e.err
	}
	if e.pods == nil || time.Since(e.at) > maxAge {
		b, err := scrapeCadvisor(ctx, client, node)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err // interrupted: not the node's failure
			}
			e.err = err
			if errors.Is(err, errNodeProxyForbidden) {
				n.mu.Lock()
				n.denied = err
				n.mu.Unlock()
			}
			return nil, err
		}
		e.at, e.pods = time.Now(), nodeinfo.SplitCadvisor(b)
		n.dropStale(node, maxAge)
	}
	return e.pods[nodeinfo.PodKey(ns, pod)], nil
}

// dropStale forgets the scrapes of other nodes older than maxAge, so a sweep over many nodes
// holds only the recent ones.
func (n *nodeScrapes) dropStale(keep string, maxAge time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for name, e := range n.byNode {
		if name == keep || !e.mu.TryLock() {
			continue // a capture is scraping it now
		}
		if e.err == nil && time.Since(e.at) > maxAge {
			e.pods = nil
		}
		e.mu.Unlock()
	}
}

// scrapeCadvisor reads a node's /metrics/cadvisor through the API server's node proxy.
func scrapeCadvisor(ctx context.Context, client kubernetes.Interface, node string) ([]byte, error) {
	b, err := client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node, "proxy", "metrics", "cadvisor").DoRaw(ctx)
	if err != nil {
		if Forbidden(err) {
			return nil, errNodeProxyForbidden
		}
		return nil, fmt.Errorf("node %s /metrics/cadvisor: %w%s", node, err, FirstLine(b[:min(len(b), 300)]))
	}
	return b, nil
}
