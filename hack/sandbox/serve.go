package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/adminreplay"
)

// replay is what the serve process replays for one incident, as it reports it to up in
// servers.json.
type replay struct {
	// Admin is the host:port of the incident's Envoy admin API replay.
	Admin string `json:"admin"`
	// LogsFile is the CRI log file served as the sidecar's log.
	LogsFile string `json:"logsFile"`
	// NodeDir is the work directory exec'd commands run in, when node files are
	// replayed; empty otherwise.
	NodeDir string `json:"nodeDir,omitempty"`
}

// serve runs an admin API replay server per incident on a free 127.0.0.1 port, writes the
// sidecar logs and keeps the node files current, reports all of it in servers.json and
// serves until it is stopped (SIGTERM from down).
func serve(ctx context.Context, p paths) error {
	incidents, err := loadIncidents(p.Incidents)
	if err != nil {
		return err
	}
	replays := map[string]replay{}
	var servers []*http.Server
	defer func() {
		for _, s := range servers {
			_ = s.Close()
		}
	}()
	for _, in := range incidents {
		h, err := adminreplay.New(in.Dir)
		if err != nil {
			return err
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, s)
		go func() { _ = s.Serve(l) }()

		work := filepath.Join(p.replayDir(), in.Name)
		if err := os.MkdirAll(work, 0o755); err != nil {
			return err
		}
		logsFile := filepath.Join(work, sidecarContainer+".log")
		accessLog, err := os.ReadFile(filepath.Join(in.Dir, diagnose.FileAccessLog))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		// An incident without access-log lines still gets a (empty) log to serve.
		if err := os.WriteFile(logsFile, criLog(accessLog), 0o644); err != nil {
			return err
		}
		nodeDir, err := startNodeReplay(ctx, in.Dir, filepath.Join(work, "node"))
		if err != nil {
			return fmt.Errorf("node files of %s: %w", in.Name, err)
		}
		replays[in.Name] = replay{Admin: l.Addr().String(), LogsFile: logsFile, NodeDir: nodeDir}
	}
	// The ambient namespace's ztunnel serves a real ztunnel's config dump (testdata/ztunnel).
	zt, err := serveZtunnelAdmin(filepath.Join(p.Incidents, "..", "ztunnel", "istioctl-1.30.3-dump.json"))
	if err != nil {
		return err
	}
	servers = append(servers, zt.server)
	replays[ztunnelReplay] = replay{Admin: zt.addr}
	if err := writeJSONAtomic(p.serversFile(), replays); err != nil {
		return err
	}
	fmt.Printf("serving %d incidents from %s\n", len(replays), p.Incidents)
	<-ctx.Done()
	return nil
}

// readServers reads servers.json; os.ErrNotExist until serve has written it.
func readServers(p paths) (map[string]replay, error) {
	b, err := os.ReadFile(p.serversFile())
	if err != nil {
		return nil, err
	}
	var m map[string]replay
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", p.serversFile(), err)
	}
	return m, nil
}

// writeJSONAtomic writes v as JSON through a rename, so a reader never sees half a file.
func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
