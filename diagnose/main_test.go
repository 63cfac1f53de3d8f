package diagnose

import "github.com/kubectl-mesh/kubectl-mesh/internal/golden"

// update makes golden-file tests rewrite their files: go test ./... -update.
var update = golden.Update
