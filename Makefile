# Isotope's make targets. `make test` is the command CI runs.
GO       ?= go
BIN      := bin/isotope
PKGS     := ./...
# The race detector on 2 cores with wazero compiles is slow: give the
# suite room, per package.
TEST_TIMEOUT ?= 40m

.PHONY: all build test test-short vet fmt-check demo bench clean generate kube-assets helm test-kube images

all: build

build:
	$(GO) build -o $(BIN) ./cmd/isotope

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Every test, with the race detector: unit, integration and end-to-end
# (the e2e tests build the real binary and drive it through the CLI).
# The Kubernetes suites run too, on a control plane built from pinned Go
# modules (kube-assets: ~10 minutes the first time on an idle 2-core
# machine, then cached) with helm built the same way for the chart's render
# test. ISOTOPE_KUBE_TESTS=off skips them, saying so.
test: fmt-check vet kube-assets helm
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

test-short:
	$(GO) test -count=1 -short $(PKGS)

# Start the platform on its embedded default and serve the example function.
demo: build
	./examples/demo.sh

# Every benchmark in bench/, one table of figures and ratios (about 8
# minutes on 2 cores); BENCH="router wasm" runs only those. See
# bench/README.md.
bench: build
	./bench/run $(BENCH)

clean:
	rm -rf bin

# The platform's container images, built with nothing but Go (no daemon,
# no base image; see docs/decisions/0015-images-without-a-daemon.md):
# bin/images/oci (an OCI layout), bin/images/<name>.tar (`docker load`,
# `kind load image-archive`) and bin/images/images.json. The same commit
# gives the same digests.
#   make images                              isotope/<name>:<chart appVersion>
#   make images TAG=v1                       another tag
#   make images PUSH=registry/team/isotope   also push <prefix>/<name>:<tag>
#                                            (keep isotope last: docs/kubernetes.md)
#   make images PUSH=host:5000/isotope INSECURE=1   a plain-HTTP registry
#   make images IMAGES=wasm-env,fetcher      only these
images:
	$(GO) run ./hack/images build $(if $(TAG),-tag $(TAG)) $(if $(PUSH),-push $(PUSH)) $(if $(IMAGES),-images $(IMAGES)) $(if $(INSECURE),-insecure)

# Code generated from api/v1's markers: deep copies and the CRDs in
# deploy/crds (checked in; rerun after changing api/v1).
CONTROLLER_GEN ?= $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0

generate:
	$(CONTROLLER_GEN) object paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=deploy/crds
	# Secret and ConfigMap are core/v1 kinds on Kubernetes, not CRDs
	# (decision 0021); controller-gen cannot be told to skip a type.
	rm -f deploy/crds/isotope.dev_secrets.yaml deploy/crds/isotope.dev_configmaps.yaml
	cp deploy/crds/*.yaml deploy/helm/isotope/crds/

# The Kubernetes control plane for the tests (kube-apiserver, etcd,
# kube-controller-manager, kube-scheduler), built from pinned Go modules
# into ~/.cache/isotope/kube-assets (or $$ISOTOPE_KUBE_ASSETS). About 10
# minutes on 2 cores the first time; a no-op afterwards.
kube-assets:
	hack/kube-assets/build.sh

# helm, built from its pinned Go module into ~/.cache/isotope/helm (or
# $$ISOTOPE_HELM), for the chart's render test in deploy/helm. A few
# minutes the first time; a no-op afterwards.
helm:
	hack/helm/build.sh

# The Kubernetes suites: every package whose tests use internal/testing/kubetest.
KUBE_PKGS ?= $(shell $(GO) list -e -f '{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./... | awk '/isotope.dev\/isotope\/internal\/testing\/kubetest/ {print $$1}')

test-kube: kube-assets helm
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(KUBE_PKGS)
