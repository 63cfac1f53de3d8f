// Package adminreplay serves an evidence folder as an Envoy admin API, the reverse of what a
// capture does: GET /stats/prometheus answers with stats.prom, /config_dump with config_dump.json,
// and so on. Integration tests and `make sandbox` put it behind kwok's ClusterPortForward, so the
// live collection path (client-go port-forward, envoyadmin.AdminClient) runs against replayed
// incidents.
//
// The stats endpoints alternate between the folder's two samples: the first request to an
// endpoint gets stats.*, the second stats-2.*, the third stats.* again, so each diagnosis that
// samples twice sees the captured window. A folder with one sample serves it every time (a proxy
// whose counters did not move). The stats files were filtered when captured, so usedonly and
// filter= are accepted and not applied again.
//
// Answers carry a Date header as Envoy's do, on the proxy's clock as it ran when the folder was
// captured (meta.json's first capture time, advancing in real time), so a live capture of the
// replay judges certificate expiry as the original capture did.
package adminreplay

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/evidence"
)

const (
	contentJSON = "application/json"
	contentText = "text/plain; charset=UTF-8"
	contentProm = "text/plain; version=0.0.4; charset=UTF-8"
)

// Handler is an http.Handler that answers Envoy admin GET requests from an evidence folder.
// It is safe for concurrent use.
type Handler struct {
	dir string
	// captured is the folder's capture time (meta.json) and started when the replay began: the
	// replay dates its answers captured + time since started, as the proxy's clock read then.
	captured, started time.Time

	mu sync.Mutex
	// served counts the requests to each stats endpoint, keyed by its first file's name.
	served map[string]int
}

// New returns a Handler serving the evidence folder dir.
func New(dir string) (*Handler, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, &fs.PathError{Op: "replay", Path: dir, Err: errors.New("not a folder: pass an evidence folder")}
	}
	h := &Handler{dir: dir, served: map[string]int{}, started: time.Now()}
	if b, err := os.ReadFile(filepath.Join(dir, evidence.Meta)); err == nil {
		var m evidence.MetaFile
		if json.Unmarshal(b, &m) == nil && len(m.CaptureTimes) > 0 {
			h.captured = m.CaptureTimes[0]
		}
	}
	return h, nil
}

// date is the Date header of an answer: the proxy's clock as it ran when the folder was
// captured (Envoy dates every answer), or now for a folder without a capture time.
func (h *Handler) date() string {
	if h.captured.IsZero() {
		return time.Now().UTC().Format(http.TimeFormat)
	}
	return h.captured.Add(time.Since(h.started)).UTC().Format(http.TimeFormat)
}

// ServeHTTP answers one admin request. What the folder lacks is 404, as Envoy answers an
// endpoint it does not know; methods other than GET and HEAD are 405.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Date", h.date())
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed: the replay serves GET only", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	switch r.URL.Path {
	case "/stats":
		switch q.Get("format") {
		case "json":
			h.serveStats(w, r, evidence.StatsJSON, evidence.Stats2JSON, contentJSON)
		case "prometheus":
			h.serveStats(w, r, evidence.StatsProm, evidence.Stats2Prom, contentProm)
		case "":
			h.serveStats(w, r, evidence.StatsText, evidence.Stats2Text, contentText)
		default:
			http.Error(w, "usage: /stats?format=(json|prometheus)", http.StatusBadRequest)
		}
	case "/stats/prometheus":
		h.serveStats(w, r, evidence.StatsProm, evidence.Stats2Prom, contentProm)
	case "/config_dump":
		h.serveFile(w, r, evidence.ConfigDump, contentJSON)
	case "/clusters":
		if q.Get("format") == "json" {
			h.serveFile(w, r, evidence.ClustersJSON, contentJSON)
		} else {
			h.serveFile(w, r, evidence.ClustersText, contentText)
		}
	case "/certs":
		h.serveFile(w, r, evidence.Certs, contentJSON)
	case "/server_info":
		h.serveFile(w, r, evidence.ServerInfo, contentJSON)
	case "/ready":
		w.Header().Set("Content-Type", contentText)
		_, _ = w.Write([]byte("LIVE\n"))
	default:
		http.Error(w, "invalid path: the replay serves /stats, /stats/prometheus, /config_dump, /clusters, /certs, /server_info and /ready", http.StatusNotFound)
	}
}

// serveStats serves the first sample on odd requests to an endpoint and the second on even ones.
func (h *Handler) serveStats(w http.ResponseWriter, r *http.Request, first, second, contentType string) {
	h.mu.Lock()
	n := h.served[first]
	h.served[first] = n + 1
	h.mu.Unlock()
	name := first
	if n%2 == 1 {
		if _, err := os.Stat(filepath.Join(h.dir, second)); err == nil {
			name = second
		}
	}
	h.serveFile(w, r, name, contentType)
}

func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, name, contentType string) {
	b, err := os.ReadFile(filepath.Join(h.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		http.Error(w, "the replayed evidence folder has no "+name, http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, "replay: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(b)
}
