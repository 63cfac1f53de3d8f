// Command etcd is etcd's server main at the version k8s.io/kubernetes requires; like
// kube-apiserver, `go install go.etcd.io/etcd/server/v3@VERSION` fails on its replaces.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
