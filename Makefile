# Kaiwo webhook. `make test` is what CI runs.
SHELL := /usr/bin/env bash
GO ?= go
BIN := bin/webhook
IMG ?= ghcr.io/silogen/kaiwo-webhook:dev

.PHONY: build test test-unit test-e2e lint bench generate fuzz fuzz-patch docker-build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/webhook

# Our Go modules. bench/ and test/ are modules of their own, so that what only the benchmarks and
# the API-server suites use (vegeta, Helm, kustomize) stays out of the main go.mod; they build
# against this checkout through a replace. hack/tools/gen and hack/tools/certmanager hold Go source
# too (the other hack/tools modules only pin tools). Each module is built, tested and linted against
# its own go.mod and go.sum: no go.work is used, and GOWORK=off keeps a local one out.
export GOWORK := off
TEST_MODULES := test bench
LINT_MODULES := . $(TEST_MODULES) hack/tools/gen hack/tools/certmanager

# RACE_PKGS run under the race detector: the core, the policy index and the server share compiled
# policies across concurrent requests. The envtest suites (a real API server) and bench run without it.
RACE_PKGS := ./api/... ./cmd/... ./internal/... ./pkg/...

# Unit, handler and envtest suites; the control-plane binaries are built once and cached under .cache/.
test: lint
	$(GO) test -race -count=1 $(RACE_PKGS)
	@set -e; assets="$$(hack/envtest-assets.sh)"; for m in $(TEST_MODULES); do \
	  echo "KUBEBUILDER_ASSETS=$$assets $(GO) -C $$m test -count=1 ./..."; \
	  KUBEBUILDER_ASSETS="$$assets" $(GO) -C $$m test -count=1 ./...; done

test-unit:
	$(GO) test -count=1 -short ./...
	@set -e; for m in $(TEST_MODULES); do echo "$(GO) -C $$m test -count=1 -short ./..."; $(GO) -C $$m test -count=1 -short ./...; done

# Kueue, cert-manager's controllers and our server as separate processes on a local control plane;
# their binaries are built once from the module proxy into .cache/.
test-e2e:
	hack/e2e.sh

# gofmt over every Go file, then go vet and staticcheck in each of LINT_MODULES. staticcheck is
# pinned by the tool directive in hack/tools/lint/go.mod (its own module, so its dependencies stay
# out of ours); `go tool -n` builds it once into the Go build cache.
lint:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@set -e; staticcheck="$$(GOFLAGS=-mod=readonly $(GO) -C hack/tools/lint tool -n staticcheck)"; \
	  for m in $(LINT_MODULES); do \
	    echo "lint $$m: go vet, staticcheck"; \
	    $(GO) -C $$m vet ./...; (cd $$m && "$$staticcheck" ./...); done

# The benchmark suite: core, handler, loopback TLS, a real API server, policy scale.
# Rewrites BENCHMARKS.md and bench/results.json (about 3 minutes here).
bench:
	hack/bench.sh

# Regenerate deepcopy, CRDs and the webhook rules of the registered kinds.
generate:
	hack/generate.sh

# Fuzz the core for FUZZTIME (default 10m).
FUZZTIME ?= 10m
fuzz:
	$(GO) test ./pkg/mutate -run '^$$' -fuzz FuzzMutate -fuzztime $(FUZZTIME)

# Fuzz the patch engine against its independent oracle (Job, Deployment, RayJob, RayService) for
# FUZZTIME; the seed corpus is pkg/typedpatch/testdata/fuzz/FuzzDiff.
fuzz-patch:
	$(GO) test ./pkg/typedpatch -run '^$$' -fuzz '^FuzzDiff$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 1x

docker-build:
	docker build -t $(IMG) .
