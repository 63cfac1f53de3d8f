package diagnose

import (
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/golden"
)

// findingsDoc is the documentation generated from the catalog.
var findingsDoc = filepath.Join("..", "docs", "findings.md")

func TestCatalogRulesAreDescribed(t *testing.T) {
	names := map[string]bool{}
	for _, r := range Rules() {
		m := r.Meta()
		if m.Name == "" || names[m.Name] {
			t.Errorf("rule %T: name %q is empty or not unique", r, m.Name)
		}
		names[m.Name] = true
		if want := fmt.Sprintf("%T", r); !strings.HasSuffix(want, "."+m.Name) {
			t.Errorf("rule %s is the type %s: name it after its type", m.Name, want)
		}
		if strings.TrimSpace(m.Description) == "" {
			t.Errorf("rule %s has no description", m.Name)
		}
		if len(m.Codes) == 0 {
			t.Errorf("rule %s declares no codes", m.Name)
		}
		if len(m.Needs) == 0 && len(m.AnyOf) == 0 {
			t.Errorf("rule %s declares no evidence it needs", m.Name)
		}
		for _, c := range m.Codes {
			if info, ok := catalogByCode[c]; !ok {
				t.Errorf("rule %s declares %s, which is not in the catalog", m.Name, c)
			} else if info.Retired {
				t.Errorf("rule %s declares the retired code %s", m.Name, c)
			}
		}
	}
}

func TestCatalogCodesAreReported(t *testing.T) {
	declared := map[Code]bool{}
	for _, r := range Rules() {
		for _, c := range r.Meta().Codes {
			declared[c] = true
		}
	}
	for _, c := range explainCodes() {
		declared[c] = true
	}
	for _, c := range catalog {
		if !c.Retired && !declared[c.Code] {
			t.Errorf("%s (%s) is reported by no rule and not by explain: retire it or report it", c.Code, c.Title)
		}
	}
}

func TestCatalogIsWellFormed(t *testing.T) {
	wellFormed := regexp.MustCompile(`^MESH(\d\d)\d\d$`)
	block := map[Category]string{}
	for i, cat := range categories {
		block[cat] = fmt.Sprintf("%02d", i+1)
	}
	seen := map[Code]bool{}
	var prev Code
	for _, c := range catalog {
		m := wellFormed.FindStringSubmatch(string(c.Code))
		switch {
		case m == nil:
			t.Errorf("%q is not MESH followed by four digits", c.Code)
			continue
		case seen[c.Code]:
			t.Errorf("%s appears twice", c.Code)
		case c.Code <= prev:
			t.Errorf("%s follows %s: keep the catalog in code order", c.Code, prev)
		}
		seen[c.Code], prev = true, c.Code
		if _, ok := block[c.Category]; !ok {
			t.Errorf("%s: category %q is not in categories", c.Code, c.Category)
		} else if m[1] != block[c.Category] {
			t.Errorf("%s: category %s owns the block MESH%s00", c.Code, c.Category, block[c.Category])
		}
		if c.Severity.Rank() == 0 {
			t.Errorf("%s: severity %q", c.Code, c.Severity)
		}
		if c.Title == "" || strings.Contains(c.Title, "\n") {
			t.Errorf("%s: title %q", c.Code, c.Title)
		}
		if strings.TrimSpace(c.Hint) == "" {
			t.Errorf("%s has no hint", c.Code)
		}
		if c.Doc() != "docs/findings.md#"+string(c.Code) {
			t.Errorf("%s: doc anchor %s", c.Code, c.Doc())
		}
	}
	cats := map[Category]bool{}
	for _, c := range categories {
		if cats[c] {
			t.Errorf("category %s listed twice", c)
		}
		cats[c] = true
	}
}

// TestFindingsDocIsCurrent fails when docs/findings.md does not match the catalog;
// UPDATE_GOLDEN=1 go test ./diagnose rewrites it.
func TestFindingsDocIsCurrent(t *testing.T) {
	var b bytes.Buffer
	if err := writeFindingsDoc(&b); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, findingsDoc, b.Bytes())
	have := b.Bytes()
	for _, c := range catalog {
		if !bytes.Contains(have, []byte(`<a id="`+string(c.Code)+`"></a>`)) {
			t.Errorf("%s has no anchor for %s", findingsDoc, c.Code)
		}
	}
}

// TestCatalogRulesWithoutEvidence runs the rules of this file's area over empty and hollow
// snapshots: absent evidence must give no finding and no panic.
func TestCatalogRulesWithoutEvidence(t *testing.T) {
	rules := []Rule{MTLSRule{}, CertExpiryRule{}, ConfigRejectedRule{}, LatencyRule{}, StatsDisabledRule{}, SidecarRule{}, AppErrorRule{}}
	hollow := &Snapshot{
		Now:       fxNow,
		Stats:     &envoyadmin.StatsSample{},
		Stats2:    &envoyadmin.StatsSample{},
		Window:    fxTwo(nil, nil).Window,
		Config:    &envoyadmin.ConfigSummary{},
		Upstreams: &envoyadmin.UpstreamClusters{},
		Certs:     []envoyadmin.Cert{{}},
		AccessLog: []envoyadmin.AccessLogEntry{{Duration: -1, UpstreamServiceTime: -1}},
		Pod:       &corev1.Pod{},
	}
	for _, s := range []*Snapshot{{}, hollow} {
		rep := Diagnose(s, rules)
		if len(rep.Findings) > 0 || len(rep.Warnings) > len(s.Warnings) {
			t.Errorf("findings %+v, warnings %v", rep.Findings, rep.Warnings)
		}
	}
}
