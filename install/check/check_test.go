package check

import (
	"bytes"
	"testing"
)

func TestRenderAndAnyFailed(t *testing.T) {
	checks := []Check{
		{Category: "control plane", Status: OK, Message: "istiod ready", Fix: "not shown: ok"},
		{Category: "control plane", Status: Warning, Message: "1 of 2 replicas", Fix: "kubectl describe deploy"},
		{Category: "CRDs", Status: Failed, Message: "not installed", Fix: "kubectl mesh install"},
		{Category: "CRDs", Status: Skipped, Message: "versions"},
	}
	var b bytes.Buffer
	if err := Render(&b, "Status", checks, false); err != nil {
		t.Fatal(err)
	}
	want := "Status\ncontrol plane\n  ✓ istiod ready\n  ! 1 of 2 replicas\n      fix: kubectl describe deploy\nCRDs\n  ✗ not installed\n      fix: kubectl mesh install\n  - versions\n\n1 ok, 1 warnings, 1 failed, 1 skipped.\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if !AnyFailed(checks) || AnyFailed(checks[:2]) {
		t.Error("AnyFailed")
	}
}
