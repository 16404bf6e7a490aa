#!/usr/bin/env bash
# make bench: runs the benchmark suite in bench/ (layers A-E and W, see BENCHMARKS.md) and rewrites
# BENCHMARKS.md and bench/results.json. The control-plane binaries for Layer D come from
# hack/envtest-assets.sh (built once, cached under .cache/). KAIWO_BENCHTIME sets the time of each
# Go benchmark (default 200ms). The suite stops by itself: bounded loops, loopback only, 14m timeout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
KUBEBUILDER_ASSETS="${KUBEBUILDER_ASSETS:-$(hack/envtest-assets.sh)}"
export KUBEBUILDER_ASSETS KAIWO_BENCH=1
# bench/ is a module of its own (bench/go.mod), tested against its own go.mod: no go.work.
export GOWORK=off
exec go -C bench test . -run '^TestSuite$' -count=1 -timeout 14m -v "$@"
