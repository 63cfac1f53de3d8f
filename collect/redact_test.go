package collect

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mesh/kubectl-mesh/evidence"
)

// secretForm is one entry of testdata/secrets/forms.yaml.
type secretForm struct {
	Form   string `json:"form"`
	Where  string `json:"where"`
	Text   string `json:"text"`
	Secret string `json:"secret"`
	Keep   string `json:"keep"`
}

// TestRedactionCorpus pushes every secret form of the corpus, and every look-alike, through
// what a capture does to each file it writes (evidence.RedactPod, listJSON, evidence.RedactFile), writes the
// evidence as a folder and as an archive, and greps both for each secret and each keep.
func TestRedactionCorpus(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "testdata", "secrets", "forms.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var corpus struct {
		Secrets, Keep []secretForm
	}
	if err := yaml.UnmarshalStrict(b, &corpus); err != nil {
		t.Fatal(err)
	}
	all := append(append([]secretForm{}, corpus.Secrets...), corpus.Keep...)

	// The config dump: a real one, each fragment added as a config of its own.
	dumpBytes, err := os.ReadFile(filepath.Join("..", "testdata", "incidents", "keepalive-race", evidence.ConfigDump))
	if err != nil {
		t.Fatal(err)
	}
	var dump map[string]any
	if err := json.Unmarshal(dumpBytes, &dump); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "productpage-v1", Namespace: "default", Annotations: map[string]string{}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}, {Name: SidecarContainer}}},
	}
	svc := corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "productpage", Namespace: "default", Annotations: map[string]string{}}}
	var log []string
	for i, f := range all {
		switch f.Where {
		case "configdump":
			var frag any
			if err := json.Unmarshal([]byte(f.Text), &frag); err != nil {
				t.Fatalf("%s: %v", f.Form, err)
			}
			dump["configs"] = append(dump["configs"].([]any), map[string]any{"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "fragment": frag, "index": i})
		case "env":
			name, value, _ := strings.Cut(f.Text, "=")
			pod.Spec.Containers[0].Env = append(pod.Spec.Containers[0].Env, corev1.EnvVar{Name: name, Value: value})
		case "args":
			pod.Spec.Containers[0].Args = append(pod.Spec.Containers[0].Args, strings.Fields(f.Text)...)
		case "annotation":
			k, v, _ := strings.Cut(f.Text, "=")
			pod.Annotations[k] = v
		case "service":
			k, v, _ := strings.Cut(f.Text, "=")
			svc.Annotations[k] = v
		case "log":
			log = append(log, "2024-04-16T14:02:20.100Z "+f.Text)
		default:
			t.Fatalf("%s: where %q", f.Form, f.Where)
		}
	}
	ev := &evidence.Set{}
	dumpBytes, _ = json.MarshalIndent(dump, "", " ")
	ev.Add(evidence.ConfigDump, evidence.RedactFile(evidence.ConfigDump, dumpBytes))
	evidence.RedactPod(pod)
	pb, _ := json.Marshal(pod)
	ev.Add(evidence.Pod, evidence.RedactFile(evidence.Pod, pb))
	sb, err := listJSON("ServiceList", "v1", &corev1.ServiceList{Items: []corev1.Service{svc}})
	if err != nil {
		t.Fatal(err)
	}
	ev.Add(evidence.Services, evidence.RedactFile(evidence.Services, sb))
	ev.Add(evidence.AccessLog, evidence.RedactFile(evidence.AccessLog, []byte(strings.Join(log, "\n")+"\n")))

	dir := t.TempDir()
	if err := ev.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if err := ev.WriteTarGz(&archive, "capture", time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	folder, err := evidence.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	packed, err := evidence.ReadArchive(&archive, "capture.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(folder.File(evidence.ConfigDump)) {
		t.Fatal("the redacted config dump is not JSON")
	}
	for _, set := range []*evidence.Set{folder, packed} {
		var text strings.Builder
		for _, n := range set.Files() {
			text.Write(set.File(n))
		}
		got := text.String()
		for _, f := range corpus.Secrets {
			if strings.Contains(got, f.Secret) {
				t.Errorf("%s: %s (%s) survived redaction", set.Where, f.Form, f.Where)
			}
		}
		for _, f := range corpus.Keep {
			if !strings.Contains(got, f.Keep) {
				t.Errorf("%s: the look-alike %s (%s) was redacted", set.Where, f.Form, f.Where)
			}
		}
	}
	if len(corpus.Secrets) < 30 || len(corpus.Keep) < 8 {
		t.Errorf("the corpus holds %d secret forms and %d look-alikes", len(corpus.Secrets), len(corpus.Keep))
	}
}
