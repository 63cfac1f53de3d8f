package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/nodereplay"
)

// startNodeReplay keeps a /proc-like tree in workDir moving from the incident's node
// samples (node.txt, node-2.txt) until ctx ends, and returns workDir for the pod's kwok
// Exec rule: commands exec'd into its istio-proxy container run there. An incident
// without node samples gets "" and no Exec rule, like a pod whose node cannot be read.
func startNodeReplay(ctx context.Context, incidentDir, workDir string) (string, error) {
	for _, name := range []string{diagnose.FileNode, diagnose.FileNode2} {
		if _, err := os.Stat(filepath.Join(incidentDir, name)); err != nil {
			return "", nil
		}
	}
	if _, err := nodereplay.Start(ctx, incidentDir, workDir); err != nil {
		return "", err
	}
	return workDir, nil
}
