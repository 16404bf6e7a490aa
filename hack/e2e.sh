#!/usr/bin/env bash
# Runs test/e2e: builds (once, cached under .cache/) kube-apiserver, etcd and
# kubectl (hack/envtest-assets.sh), the Kueue controller manager and the
# cert-manager harness (hack/e2e-assets.sh), then the Go e2e suite, which starts
# every component as its own process. Extra arguments go to `go test`
# (e.g. -run TestJobAdmittedByKueue -v).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
start=$SECONDS
KUBEBUILDER_ASSETS="$(hack/envtest-assets.sh)"
export KUBEBUILDER_ASSETS
eval "$(hack/e2e-assets.sh)"
export KUEUE_BIN KUEUE_DIR CERT_MANAGER_BIN CERT_MANAGER_DIR KUBERAY_DIR
echo "e2e: binaries ready in $((SECONDS - start))s" >&2
# test/ is a module of its own (test/go.mod), tested against its own go.mod: no go.work.
E2E=1 GOWORK=off go -C test test -count=1 -timeout 20m "$@" ./e2e
echo "e2e: done in $((SECONDS - start))s" >&2
