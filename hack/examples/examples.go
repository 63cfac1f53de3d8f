package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/meshtest"
)

// The expected exit codes follow the README's exit status (0 the command ran, 1 a configure
// command found a problem it reports, 2 bad usage); the expected top findings are those of
// testdata/incidents/README.md's table.

// offlineExamples need no cluster: incidents is testdata/incidents.
func offlineExamples(incidents string) []Example {
	in := func(name string) string { return filepath.Join(incidents, name) }
	return []Example{
		{Args: []string{"why-slow", "--from", in("timeout")}, Top: []string{"MESH0101"}},
		{Args: []string{"why-slow", "--from", in("node-cpu-steal")}, Top: []string{"MESH1501"}},
		// Envoy's 503 body for a connection the upstream closed: keepalive-race's story.
		{Args: []string{"explain", "upstream connect error or disconnect/reset before headers. reset reason: connection termination"}, Top: []string{"MESH0401"}},
		// A connect failure first: the retries it exhausted come second.
		{Args: []string{"explain", "UF,URX"}, Top: []string{"MESH0204"}},
		// A real ztunnel access-log line, as the corpus keeps it (ztunnel#1229): HBONE's port blocked.
		{Args: []string{"explain", firstLine(filepath.Join(incidents, "..", "realworld", "istio-ambient-ztunnel-pr-1229-005-outbound-hbone-timeout-networkpolicy-hint", "input.txt"))}, Top: []string{"MESH0206"}},
		{Args: []string{"clusters", "--from", in("circuit-breaker")}},
		{Args: []string{"version"}},
		{Args: []string{"rbac"}},
	}
}

// liveExamples run on the live mesh (startLive); archive is where capture writes.
func liveExamples(archive string) []Example {
	return []Example{
		// The sweep puts first productpage-mtls-mismatch (MESH0802) or productpage-no-endpoints
		// (MESH0501): each fails every one of its 20 requests a second, a tie that RankPods
		// breaks by the rate over each pod's own measured window, so either may come first.
		{Args: []string{"why-slow", "-n", "default", "--window", "2s"}, Top: []string{"MESH0802", "MESH0501"}},
		// MESH1101 first and MESH1105 beside it, as the incidents README says: both are warnings
		// on the same requests, and diagnose.Rank ties their impacts to the thousandth.
		{Args: []string{"why-slow", "pod/productpage-network-latency", "-n", "default", "--window", "2s"}, Top: []string{"MESH1101"}},
		{Args: []string{"capture", "pod/productpage-keepalive-race", "-n", "default", "-o", archive, "--window", "2s"}},
		{Args: []string{"rbac", "--check", "-n", "default"}},
	}
}

// configureExamples install the charts at charts, the injector webhook pointing at inj,
// then configure the bookinfo namespace of startConfigure.
func configureExamples(charts string, inj *meshtest.Injector) []Example {
	ca := base64.StdEncoding.EncodeToString(inj.CABundle)
	// Istio's own charts; kwok runs no istiod, so their remote values point the injector and
	// validation webhooks at the in-process injector.
	install := []string{"install", "--charts", charts, "--version", meshtest.IstioVersion, "--skip-node-probe",
		"--set", "istiod.istiodRemote.injectionURL=" + inj.URL + "/default",
		"--set", "istiod.istiodRemote.injectionCABundle=" + ca,
		"--set", "istiod.base.validationURL=" + inj.ValidationURL,
		"--set", "istiod.base.validationCABundle=" + ca,
		"--set", "base.base.validationURL=" + inj.ValidationURL,
		"--set", "base.base.validationCABundle=" + ca}
	return []Example{
		// The node probe finds node-cpu-steal's steal: a warning, which does not fail the check.
		{Args: []string{"install", "--check", "--inject-namespaces", "bookinfo"}},
		{Args: []string{"install", "--dry-run", "--profile", "minimal", "--charts", charts, "--version", meshtest.IstioVersion}, Abridge: releasesAndKinds},
		{Args: install},
		// Again: every release unchanged.
		{Args: install},
		// No namespace labelled for injection yet: a warning.
		{Args: []string{"status"}},
		{Args: []string{"inject", "bookinfo", "--timeout", "60s"}},
		{Args: []string{"inject", "bookinfo"}},
		{Args: []string{"mtls", "bookinfo", "--mode", "strict", "--window", "2s"}},
		{Args: []string{"canary", "reviews", "-n", "bookinfo", "--canary", "v2", "--weight", "10"}},
		{Args: []string{"canary", "reviews", "-n", "bookinfo", "--canary", "v2", "--weight", "10", "--step", "45", "--interval", "2s", "--max-error-rate", "1%"}},
		// The node replays node-cpu-steal: 38% steal falls short, and nodes says so with 1.
		{Args: []string{"nodes", "--window", "2s"}, Exit: 1},
		{Args: []string{"nodes", "--apply", "--dry-run"}},
		{Args: []string{"uninstall"}},
	}
}

// releasesAndKinds abridges install --dry-run's manifests to their releases and kinds.
func releasesAndKinds(out string) string {
	var kept []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "# Helm release") || strings.HasPrefix(l, "kind:") || strings.HasPrefix(l, "client dry run") {
			kept = append(kept, l)
		}
	}
	return "(the manifests, abridged to their releases and kinds)\n" + strings.Join(kept, "\n") + "\n"
}

// firstLine is a file's first line; when it cannot be read, the error, which then fails its
// example.
func firstLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
}
