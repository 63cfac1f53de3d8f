# kubectl-mesh: make demo, make test, make bench.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
PKG := github.com/kubectl-mesh/kubectl-mesh
LDFLAGS := -s -w -X $(PKG)/plugins/version.Version=$(VERSION) -X $(PKG)/plugins/version.Commit=$(COMMIT)
BIN := bin/kubectl-mesh
# install and uninstall link Helm's SDK: they live in a second binary beside the first.
BIN_INSTALL := bin/kubectl-mesh-install
DEMO ?= testdata/incidents/keepalive-race
FUZZTIME ?= 3s

.PHONY: all build demo test unit vet fuzz realworld examples examples-check bench bench-process bench-go bench-live clean dist krew-manifest release-check

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/kubectl-mesh
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN_INSTALL) ./cmd/kubectl-mesh-install

# Diagnose a bundled incident: no cluster needed.
demo: build
	$(BIN) why-slow --from $(DEMO)

# The whole suite: vet, the examples' exit codes and top findings, the release archives and
# krew manifest (which ./krew's tests install as krew would), unit, corpus and integration
# tests (the examples and integration tests against the real control plane below, built on
# first use), and every fuzz target briefly.
test: vet testcluster examples-check release-check unit fuzz

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

unit:
	$(GO) test -count=1 ./...

# The real-world corpus (testdata/realworld): every case's table and the score.
realworld:
	@$(GO) test -count=1 -run '^TestRealWorld$$' -v ./diagnose | grep -E '^\s+(ok|FAIL) |cases \(|name the established|floor|bar' | sed 's/^    realworld_test.go:[0-9]*: //'

# Runs each fuzz target for FUZZTIME, seeded from the real captures.
fuzz:
	@set -e; for pkg in ./envoyadmin ./diagnose ./nodeinfo; do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    out=$$($(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg 2>&1) || { echo "$$out" | grep -v '^fuzz: elapsed' | tail -40; exit 1; }; \
	  done; \
	done

# docs/examples.md: every command run by the built binaries, offline and on the test control
# plane, each checked (its exit code, a diagnosis's top finding) before the doc is written.
# examples-check runs and checks them without writing.
examples: testcluster
	$(GO) run ./hack/examples

examples-check: testcluster
	$(GO) run ./hack/examples -check

# Whole processes as a user feels them (version beside the start-up baseline, clusters --file
# on a 5,000-cluster dump grown from a real one, why-slow --from an incident), then the Go
# benchmarks.
bench: bench-process bench-go

bench-process: build
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o bin/startup-baseline ./hack/startup-baseline
	$(GO) run ./hack/benchprocess -bin $(BIN) -baseline bin/startup-baseline -incident $(DEMO)

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The live path on the test control plane: one pod's cost beyond its window, a 500-pod sweep.
bench-live: testcluster
	$(GO) test -run '^$$' -bench 'DiagnosisBeyondWindow|Sweep500' -benchmem -benchtime 1x -timeout 30m ./plugins/whyslow

clean:
	rm -rf bin dist

# Release archives for every platform (kubectl-mesh, kubectl-mesh-install,
# kubectl_complete-mesh, LICENSE, README.md) and checksums.txt, into dist/:
#   make dist VERSION=v0.2.0
dist:
	@echo "$(VERSION)" | grep -Eq '^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$$' || { echo "make dist needs VERSION=vX.Y.Z (got $(VERSION))"; exit 1; }
	rm -rf dist
	$(GO) run ./hack/dist -version $(VERSION) -commit $(COMMIT) -out dist

# dist/mesh.yaml: krew/mesh.yaml filled with the version and each archive's uri and sha256.
krew-manifest:
	$(GO) run ./hack/krewmanifest -version $(VERSION) -dist dist -template krew/mesh.yaml > dist/mesh.yaml.tmp
	mv dist/mesh.yaml.tmp dist/mesh.yaml

# What make test checks of a release: the archives and manifest of a test version, which
# go test ./krew validates and installs as krew would.
RELEASE_CHECK_VERSION ?= v0.0.0-test
release-check:
	$(MAKE) dist krew-manifest VERSION=$(RELEASE_CHECK_VERSION)

# The real control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)
# that integration tests start on 127.0.0.1: built once per version into
# .cache/testcluster (cold: about 5 minutes and 2 GB; cached: instant).
.PHONY: testcluster testcluster-test

testcluster:
	hack/testcluster/build.sh >/dev/null

testcluster-test: testcluster
	$(GO) test -count=1 ./internal/testing/testcluster/...

# The live path without a cluster: the control plane above, detached, with a namespace `demo`
# of meshed pods whose sidecars replay testdata/incidents (state in .cache/sandbox).
.PHONY: sandbox sandbox-down

sandbox: build testcluster
	$(GO) run ./hack/sandbox up

sandbox-down:
	$(GO) run ./hack/sandbox down
