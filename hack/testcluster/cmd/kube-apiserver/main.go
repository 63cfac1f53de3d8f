// Command kube-apiserver is upstream's cmd/kube-apiserver, rebuilt here because
// `go install k8s.io/kubernetes/cmd/kube-apiserver@VERSION` refuses a module with
// replace directives.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as upstream registers them
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as upstream registers it
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
