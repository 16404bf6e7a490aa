# Kaiwo webhook. `make test` is what CI runs.
SHELL := /usr/bin/env bash
GO ?= go
BIN := bin/webhook
IMG ?= ghcr.io/silogen/kaiwo-webhook:dev

.PHONY: build test test-unit test-e2e lint bench generate fuzz docker-build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/webhook

# RACE_PKGS run under the race detector: the core, the policy index and the server share compiled
# policies across concurrent requests. The envtest suites (a real API server) and bench run without it.
RACE_PKGS := ./api/... ./cmd/... ./internal/... ./pkg/...

# Unit, handler and envtest suites; the control-plane binaries are built once and cached under .cache/.
test: lint
	$(GO) test -race -count=1 $(RACE_PKGS)
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" $(GO) test -count=1 ./bench/... ./test/...

test-unit:
	$(GO) test -count=1 -short ./...

# Kueue, cert-manager's controllers and our server as separate processes on a local control plane;
# their binaries are built once from the module proxy into .cache/.
test-e2e:
	hack/e2e.sh

# staticcheck is pinned by the tool directive in hack/tools/lint/go.mod (its own module, so its
# dependencies stay out of ours); `go tool -n` builds it once into the Go build cache.
lint:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	"$$(GOWORK=off GOFLAGS=-mod=readonly $(GO) -C hack/tools/lint tool -n staticcheck)" ./...

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

docker-build:
	docker build -t $(IMG) .
