#!/usr/bin/env bash
# Regenerates what is derived from api/ and checked in:
#   api/v1alpha1/zz_generated.deepcopy.go       (controller-gen object)
#   config/crd/kaiwo.silogen.ai_*.yaml          (controller-gen crd)
#   config/webhook/{mutating,validating}_webhook.yaml and the chart's
#   templates/{mutating,validating}webhook.yaml  (hack/webhookrules, from the kind registry)
# controller-gen is pinned by the tool directive in hack/tools/gen/go.mod, a
# module of its own so that controller-tools' dependencies stay out of the main
# go.mod. `go tool -n` builds it once into the Go build cache and prints its path.
#
# Usage: hack/generate.sh [OUT]
# OUT defaults to the repo root; the staleness test (api/v1alpha1) passes a
# temp dir and compares. Only the module proxy is needed, on the first run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
OUT="${1:-$ROOT}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd -P)"

CONTROLLER_GEN="$(GOWORK=off GOFLAGS=-mod=readonly go -C "$ROOT/hack/tools/gen" tool -n controller-gen)"

mkdir -p "$OUT/api/v1alpha1" "$OUT/config/crd"
rm -f "$OUT"/config/crd/kaiwo.silogen.ai_*.yaml

cd "$ROOT"
"$CONTROLLER_GEN" \
  object paths=./api/v1alpha1 output:object:dir="$OUT/api/v1alpha1" \
  crd paths=./api/... output:crd:dir="$OUT/config/crd"

# The webhook rules of every kind, from the kind registry (pkg/webhookrules checks they are current).
GOWORK=off go run ./hack/webhookrules -out "$OUT"

# The Helm chart ships the same CRD (test/manifests checks they are equal).
if [[ "$OUT" == "$ROOT" ]]; then
  cp config/crd/kaiwo.silogen.ai_kaiwopolicies.yaml charts/kaiwo-webhook/files/kaiwo.silogen.ai_kaiwopolicies.yaml
fi
