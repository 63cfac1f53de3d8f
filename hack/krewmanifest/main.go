// Command krewmanifest fills the krew manifest template (krew/mesh.yaml, in krew-release-bot's
// syntax) for a release from its archives: the version, and each platform's uri and sha256, as
// krew-release-bot does on a release tag. make krew-manifest runs it.
//
//	go run ./hack/krewmanifest -version v0.2.0 -dist dist -template krew/mesh.yaml > dist/mesh.yaml
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/template"
)

func main() {
	version := flag.String("version", "", "release tag, vX.Y.Z")
	dist := flag.String("dist", "dist", "folder of the release archives")
	tmpl := flag.String("template", "krew/mesh.yaml", "the manifest template")
	flag.Parse()
	if err := render(os.Stdout, *tmpl, *dist, *version); err != nil {
		fmt.Fprintln(os.Stderr, "krewmanifest:", err)
		os.Exit(1)
	}
}

func render(w *os.File, tmplPath, dist, version string) error {
	if version == "" {
		return fmt.Errorf("-version is required")
	}
	b, err := os.ReadFile(tmplPath)
	if err != nil {
		return err
	}
	funcs := template.FuncMap{
		// addURIAndSha is krew-release-bot's: the uri with the tag in it, and the sha256 of
		// the archive it names (here, the one in dist).
		"addURIAndSha": func(uri, tag string) (string, error) {
			uri = strings.ReplaceAll(uri, "{{ .TagName }}", tag)
			body, err := os.ReadFile(filepath.Join(dist, path.Base(uri)))
			if err != nil {
				return "", fmt.Errorf("the archive of %s: %w (run make dist VERSION=%s first)", uri, err, tag)
			}
			sum := sha256.Sum256(body)
			return fmt.Sprintf("uri: %s\n    sha256: %s", uri, hex.EncodeToString(sum[:])), nil
		},
	}
	t, err := template.New(filepath.Base(tmplPath)).Funcs(funcs).Parse(string(b))
	if err != nil {
		return err
	}
	return t.Execute(w, map[string]string{"TagName": version})
}
