package rbac

// Linked so that go test ./... -update, which refreshes golden files elsewhere, is a known flag here.
import _ "github.com/kubectl-mesh/kubectl-mesh/internal/golden"
