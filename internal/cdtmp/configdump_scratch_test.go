package envoyadmin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/internal/captures"
)

func TestScratchConfigDump(t *testing.T) {
	files := append(captures.Files(t, "config_dump"), captures.Path(t, "certs/istio-secrets-config-dump-sds.json"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		s, err := ParseConfigDump(b)
		if err != nil {
			t.Fatal(f, err)
		}
		out, _ := json.MarshalIndent(s, "", " ")
		os.WriteFile("/tmp/cdscratch/"+filepath.Base(f)+".summary.json", out, 0o644)
		t.Logf("%s: clusters=%d listeners=%d routes=%d eps=%d secrets=%d warnings=%v", filepath.Base(f), len(s.Clusters), len(s.Listeners), len(s.Routes), len(s.Endpoints), len(s.Secrets), s.Warnings)
	}
}
