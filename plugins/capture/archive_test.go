package capture

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/evidence"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/adminreplay"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/incidentpod"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/meshtest"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
	"github.com/kubectl-mesh/kubectl-mesh/plugins/whyslow"
)

const incident = "../../testdata/incidents/keepalive-race"

// A JSON Web Token and a password as an application would leak them.
const (
	leakedJWT      = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlIiwic3ViIjoiYWxpY2UifQ.ZmFrZS1zaWduYXR1cmU"
	leakedPassword = "hunter2-db-password"
)

// secretReplay copies the incident into a folder whose proxy leaks what a real one can: an SDS
// secret with its private key in the config dump, and an access-log line with a bearer token.
func secretReplay(t *testing.T) (dir string, keyPEM string) {
	t.Helper()
	dir = t.TempDir()
	entries, err := os.ReadDir(incident)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(incident, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	var dump map[string]any
	b, _ := os.ReadFile(filepath.Join(dir, diagnose.FileConfigDump))
	if err := json.Unmarshal(b, &dump); err != nil {
		t.Fatal(err)
	}
	dump["configs"] = append(dump["configs"].([]any), map[string]any{
		"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
		"dynamic_active_secrets": []any{map[string]any{
			"name": "default",
			"secret": map[string]any{
				"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
				"name":  "default",
				"tls_certificate": map[string]any{
					"certificate_chain": map[string]any{"inline_bytes": base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))},
					"private_key":       map[string]any{"inline_bytes": base64.StdEncoding.EncodeToString([]byte(keyPEM))},
				},
			},
		}},
	})
	b, _ = json.MarshalIndent(dump, "", " ")
	if err := os.WriteFile(filepath.Join(dir, diagnose.FileConfigDump), b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, diagnose.FileAccessLog), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(`2024-04-16T14:02:20.100Z [2024-04-16T14:02:20.099Z] "GET /api/v1/products HTTP/1.1" 200 - via_upstream - "-" 0 395 3 2 "-" "curl/8.5" "a1" "productpage:9080" "10.0.0.9:9080" inbound|9080|| 127.0.0.6:41234 10.0.0.9:9080 10.0.0.4:50000 - default "Bearer ` + leakedJWT + `"` + "\n"); err != nil {
		t.Fatal(err)
	}
	return dir, keyPEM
}

// TestCaptureArchiveRedacted captures a live pod whose proxy and spec leak secrets into a
// .tar.gz through the real API server, checks no private key, token or password is in the
// archive, and diagnoses the archive with why-slow --from: the same cause as the incident.
func TestCaptureArchiveRedacted(t *testing.T) {
	dir, keyPEM := secretReplay(t)
	h, err := adminreplay.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cri, err := incidentpod.CRILog(dir)
	if err != nil {
		t.Fatal(err)
	}
	logs := filepath.Join(t.TempDir(), "proxy.log")
	if err := os.WriteFile(logs, cri, 0o644); err != nil {
		t.Fatal(err)
	}
	c := testcluster.Start(t, testcluster.Options{KwokRules: []string{
		testcluster.PortForwardRule("", "envoy-admin", 15000, strings.TrimPrefix(srv.URL, "http://")),
		testcluster.LogsRule("", "proxy-logs", []string{"istio-proxy"}, logs),
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "productpage-v1", Namespace: "default", Annotations: map[string]string{
			"kubectl.kubernetes.io/last-applied-configuration": `{"spec":{"containers":[{"env":[{"name":"DB_URL","value":"postgres://app:` + leakedPassword + `@db"}]}]}}`,
			// The corpus's annotation forms (testdata/secrets/forms.yaml) are added below.
		}},
		Spec: corev1.PodSpec{NodeName: c.Nodes[0], Containers: []corev1.Container{
			{Name: "app", Image: "example.invalid/app", Env: []corev1.EnvVar{
				{Name: "DB_PASSWORD", Value: leakedPassword}, {Name: "UPSTREAM_HEADER", Value: "Bearer " + leakedJWT}, {Name: "LOG_LEVEL", Value: "info"},
			}},
			{Name: "istio-proxy", Image: "example.invalid/proxyv2"},
		}},
	}
	forms := podSecretForms(t)
	for _, f := range forms {
		switch f.Where {
		case "env":
			name, value, _ := strings.Cut(f.Text, "=")
			pod.Spec.Containers[0].Env = append(pod.Spec.Containers[0].Env, corev1.EnvVar{Name: name, Value: value})
		case "args":
			pod.Spec.Containers[0].Args = append(pod.Spec.Containers[0].Args, strings.Fields(f.Text)...)
		case "annotation":
			k, v, _ := strings.Cut(f.Text, "=")
			pod.Annotations[k] = v
		}
	}
	if _, err := c.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := c.Client.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, err
	}); err != nil {
		t.Fatal(err)
	}

	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &c.Kubeconfig
	streams, _, _, errOut := genericiooptions.NewTestIOStreams()
	cmd := NewCmd(flags, streams)
	flags.AddFlags(cmd.PersistentFlags())
	archive := filepath.Join(t.TempDir(), "productpage.tar.gz")
	cmd.SetArgs([]string{"pod/productpage-v1", "-n", "default", "-o", archive, "--window", "1s"})
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("capture: %v\nstderr:\n%s", err, errOut)
	}

	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ev, err := evidence.ReadArchive(f, archive)
	if err != nil {
		t.Fatal(err)
	}
	keyBody := strings.Split(keyPEM, "\n")[1] // a line of the key's base64
	var all bytes.Buffer
	for _, name := range ev.Names() {
		b := ev.File(name)
		all.Write(b)
		for what, secret := range map[string]string{"the private key": keyBody, "the private key (base64)": base64.StdEncoding.EncodeToString([]byte(keyPEM))[:40],
			"the JWT": leakedJWT[:30], "the password": leakedPassword, "a PEM private key": "PRIVATE KEY-----"} {
			if strings.Contains(string(b), secret) {
				t.Errorf("%s holds %s", name, what)
			}
		}
	}
	for _, f := range forms {
		in := string(ev.File(diagnose.FilePod))
		if f.Secret != "" && strings.Contains(in, f.Secret) {
			t.Errorf("pod.yaml holds the corpus's %s (%s)", f.Form, f.Where)
		}
		if f.Keep != "" && !strings.Contains(in, f.Keep) {
			t.Errorf("pod.yaml lost the look-alike %s (%s)", f.Form, f.Where)
		}
	}
	var got corev1.Pod
	if err := yaml.Unmarshal(ev.File(diagnose.FilePod), &got); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, e := range got.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if env["DB_PASSWORD"] != "[redacted]" || env["UPSTREAM_HEADER"] != "Bearer [redacted]" || env["LOG_LEVEL"] != "info" {
		t.Errorf("pod.yaml env %v, want the password and token redacted and LOG_LEVEL kept", env)
	}
	if _, ok := got.Annotations["kubectl.kubernetes.io/last-applied-configuration"]; ok {
		t.Error("kubectl's last-applied copy of the spec is in pod.yaml")
	}
	if !strings.Contains(string(ev.File(diagnose.FileAccessLog)), `"Bearer [redacted]"`) {
		t.Error("access.log lost the line with the token instead of redacting it")
	}

	// The archive diagnoses as the incident does.
	wstreams, _, wout, werr := genericiooptions.NewTestIOStreams()
	wcmd := whyslow.NewCmd(genericclioptions.NewConfigFlags(false), wstreams)
	wcmd.SetArgs([]string{"--from", archive, "-o", "json"})
	if err := wcmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("why-slow --from %s: %v\n%s", archive, err, werr)
	}
	var r diagnose.Report
	if err := json.Unmarshal(wout.Bytes(), &r); err != nil || len(r.Findings) == 0 || r.Findings[0].Code != "MESH0401" {
		t.Fatalf("why-slow --from the archive: %v, findings %v; want MESH0401 first as the incident", err, r.Findings)
	}
}

// TestCaptureFollowsHop captures productpage of the network-latency mesh: the capture follows
// the hop to reviews as why-slow does live, so the folder splits the latency offline too.
func TestCaptureFollowsHop(t *testing.T) {
	c := meshtest.StartHop(t, "../../testdata/incidents")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &c.Kubeconfig
	streams, _, _, errOut := genericiooptions.NewTestIOStreams()
	cmd := NewCmd(flags, streams)
	flags.AddFlags(cmd.PersistentFlags())
	dir := filepath.Join(t.TempDir(), "capture")
	cmd.SetArgs([]string{"pod/productpage", "-o", dir, "--window", "1s"})
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("capture: %v\nstderr:\n%s", err, errOut)
	}
	for _, f := range []string{diagnose.FileHops, "hop-1.prom", "hop-1-2.prom"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("the capture lacks the hop's %s: %v\nstderr:\n%s", f, err, errOut)
		}
	}
	snap, err := diagnose.LoadDir(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range diagnose.Diagnose(snap, diagnose.Rules()).Findings {
		found = found || f.Code == "MESH1105"
	}
	if !found {
		t.Errorf("the captured folder does not split the latency (no MESH1105); warnings %v", snap.Warnings)
	}
}

// podSecretForm is an entry of testdata/secrets/forms.yaml that a pod's spec can hold.
type podSecretForm struct {
	Form, Where, Text, Secret, Keep string
}

// podSecretForms reads the corpus's forms that live in a pod: env, args and annotations.
func podSecretForms(t *testing.T) []podSecretForm {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "secrets", "forms.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var corpus struct {
		Secrets, Keep []podSecretForm
	}
	if err := yaml.Unmarshal(b, &corpus); err != nil {
		t.Fatal(err)
	}
	var out []podSecretForm
	for _, f := range append(corpus.Secrets, corpus.Keep...) {
		if f.Where == "env" || f.Where == "args" || f.Where == "annotation" {
			out = append(out, f)
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d pod forms in the corpus", len(out))
	}
	return out
}
