#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) into .cache/testcluster/<key>/bin and prints that
# directory on stdout. The key is the versions plus a hash of this module's go.mod,
# go.sum and versions.env, so a warm run is a no-op and a version bump rebuilds.
#
# A cold build (empty module and build caches) took 11m42s and 1.9 GB peak RSS on a
# 2-core machine, and fills ~0.8 GB of module cache and ~3.7 GB of build cache. -p 2 is
# the default there; it is pinned so a wider machine does not compile and link several
# of the big Kubernetes packages at once and run out of memory.
#
# Env: TESTCLUSTER_CACHE overrides .cache/testcluster; TESTCLUSTER_P the build parallelism.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$here"
# shellcheck source=versions.env
source ./versions.env

log() { echo "testcluster: $*" >&2; }

hash=$(cat go.mod go.sum versions.env | sha256sum | cut -c1-12)
key="kube-${KUBE_VERSION}-etcd-${ETCD_VERSION}-kwok-${KWOK_VERSION}-${hash}"
dir="${TESTCLUSTER_CACHE:-$root/.cache/testcluster}/$key"
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

cached=1
for b in "${bins[@]}"; do [[ -x "$dir/bin/$b" ]] || cached=0; done
if [[ $cached == 1 && -d "$dir/kwok-crds" ]]; then
  log "cached: $dir/bin"
  echo "$dir/bin"
  exit 0
fi

# The Kubernetes version is baked into -X flags below, so go.mod and versions.env must agree.
have_kube=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
have_etcd=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
if [[ $have_kube != "$KUBE_VERSION" || $have_etcd != "$ETCD_VERSION" ]]; then
  log "go.mod has k8s.io/kubernetes $have_kube and etcd $have_etcd, versions.env says $KUBE_VERSION and $ETCD_VERSION"
  exit 1
fi

# Without these the servers report v0.0.0-master, which breaks clients' version checks.
minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
major=${KUBE_VERSION#v}; major=${major%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# Build into a scratch directory and rename it at the end, so an interrupted build
# never leaves binaries that look cached.
mkdir -p "$(dirname "$dir")"
tmp=$(mktemp -d "$dir.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp" && mkdir -p "$tmp/bin"
export CGO_ENABLED=0
start=$SECONDS

log "downloading modules (about 0.8 GB into the module cache when cold)"
go mod download
log "building Kubernetes $KUBE_VERSION and etcd $ETCD_VERSION into $dir/bin (cold: ~10 min, ~2 GB of memory)"
go build -p "${TESTCLUSTER_P:-2}" -trimpath -ldflags "$ldflags" -o "$tmp/bin/" ./cmd/...
log "control plane built after $((SECONDS - start))s"

# kwok builds fine with `go install pkg@version` (its go.mod has no replaces), which
# keeps its own tested dependency set instead of merging it into this module's graph.
log "building kwok $KWOK_VERSION"
GOBIN="$tmp/bin" go install -p "${TESTCLUSTER_P:-2}" -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
# kwok's CRDs, for clusters started with kwok's --enable-crds (dynamic per-pod rules).
kwokdir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
mkdir -p "$tmp/kwok-crds"
cp "$kwokdir"/kustomize/crd/bases/*.yaml "$tmp/kwok-crds/"
chmod -R u+w "$tmp/kwok-crds"

for b in "${bins[@]}"; do [[ -x "$tmp/bin/$b" ]] || { log "missing $b after build"; exit 1; }; done
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
# Older keys are dead weight (~0.5 GB each): keep only the one just built.
for old in "$(dirname "$dir")"/kube-*; do
  [[ "$old" == "$dir" ]] || { log "removing stale $old"; rm -rf "$old"; }
done
log "done after $((SECONDS - start))s: $dir/bin"
echo "$dir/bin"
