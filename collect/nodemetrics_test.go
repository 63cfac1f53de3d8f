package collect

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestNodeScrapesShared checks that the captures of a sweep read a node's cAdvisor once per
// sample round, not once per pod, that a scrape older than the allowed age is read again, and
// that a refused node proxy is asked once for the whole sweep.
func TestNodeScrapesShared(t *testing.T) {
	metrics, err := os.ReadFile("../nodeinfo/testdata/cadvisor.prom")
	if err != nil {
		t.Fatal(err)
	}
	var scrapesA, scrapesB atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/nodes/node-a/proxy/metrics/cadvisor":
			scrapesA.Add(1)
			time.Sleep(5 * time.Millisecond) // the pods asking meanwhile wait for this scrape
			_, _ = w.Write(metrics)
		case "/api/v1/nodes/node-b/proxy/metrics/cadvisor", "/api/v1/nodes/node-c/proxy/metrics/cadvisor":
			scrapesB.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,"message":"nodes/proxy is forbidden"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	client, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cache := &KubeCache{}
	pods := []string{"productpage-v1-6c5b8d6b9f-k7x2m", "details-v1-5f4d584748-9lqkz"}
	round := func(maxAge time.Duration) {
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pod := pods[i%2]
				b, err := cache.podCadvisor(ctx, client, "node-a", "default", pod, maxAge)
				if err != nil || !strings.Contains(string(b), `pod="`+pod+`"`) || strings.Contains(string(b), pods[(i+1)%2]) {
					t.Errorf("pod %s: %v\n%s", pod, err, b)
				}
			}()
		}
		wg.Wait()
	}
	round(time.Minute)
	if n := scrapesA.Load(); n != 1 {
		t.Errorf("20 captures on one node scraped it %d times, want once", n)
	}
	round(time.Minute)
	if n := scrapesA.Load(); n != 1 {
		t.Errorf("a scrape younger than the allowed age was read again: %d scrapes", n)
	}
	time.Sleep(2 * time.Millisecond)
	if _, err := cache.podCadvisor(ctx, client, "node-a", "default", pods[0], time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if n := scrapesA.Load(); n != 2 {
		t.Errorf("a scrape older than the allowed age was reused: %d scrapes, want 2", n)
	}

	for _, node := range []string{"node-b", "node-b", "node-c"} {
		_, err := cache.podCadvisor(ctx, client, node, "default", pods[0], time.Minute)
		if err == nil || !strings.Contains(err.Error(), "needs get on nodes/proxy") {
			t.Errorf("%s: err = %v, want the missing nodes/proxy permission named", node, err)
		}
	}
	if n := scrapesB.Load(); n != 1 {
		t.Errorf("a refused node proxy was asked %d times, want once: nodes/proxy is cluster-wide", n)
	}

	var none *KubeCache
	for i := 0; i < 2; i++ {
		if _, err := none.podCadvisor(ctx, client, "node-a", "default", pods[0], time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if n := scrapesA.Load(); n != 4 {
		t.Errorf("without a cache every read scrapes: %d scrapes, want 4", n)
	}
}

func TestMaxScrapeAge(t *testing.T) {
	for window, want := range map[time.Duration]time.Duration{time.Second: 500 * time.Millisecond, 10 * time.Second: 5 * time.Second, time.Minute: 5 * time.Second} {
		if got := maxScrapeAge(window); got != want || got >= window {
			t.Errorf("maxScrapeAge(%v) = %v, want %v (under the window, so two samples never share a scrape)", window, got, want)
		}
	}
}
