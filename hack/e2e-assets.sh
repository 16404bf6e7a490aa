#!/usr/bin/env bash
# Builds (once, then caches) the extra binaries that test/e2e runs next to the
# envtest control plane, each from its own Go tools module so that their
# dependency versions never touch the main module's:
#   kueue             sigs.k8s.io/kueue/cmd/kueue                (hack/tools/kueue)
#   cert-manager-e2e  cert-manager issuing controllers + cainjector harness
#                     built on github.com/cert-manager/cert-manager (hack/tools/certmanager)
#
# Cache layout (git-ignored, relative to the repo root):
#   .cache/bin/kueue-<kueue version>/kueue
#   .cache/bin/cert-manager-<cert-manager version>/cert-manager-e2e
#
# Prints shell assignments on stdout, one a line, for `eval`:
#   KUEUE_BIN=/abs/path/kueue
#   KUEUE_DIR=/abs/path/to/the/kueue module source (CRDs, config/)
#   CERT_MANAGER_BIN=/abs/path/cert-manager-e2e
#   CERT_MANAGER_DIR=/abs/path/to/the/cert-manager module source (CRDs)
#   KUBERAY_DIR=/abs/path/to/the/ray-operator module source of the main module (CRDs)
#   JOBSET_DIR, LWS_DIR, TRAINING_OPERATOR_DIR=/abs/paths to the sigs.k8s.io/jobset,
#     sigs.k8s.io/lws and github.com/kubeflow/training-operator module sources, at the
#     versions the Kueue build requires (hack/tools/kueue/go.mod), for their CRDs
# All build output goes to stderr. A binary is built only when missing, into a
# temp file renamed into place; concurrent runs are serialised by a lock.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
CACHE="$ROOT/.cache"
KUEUE_TOOLS="$ROOT/hack/tools/kueue"
CM_TOOLS="$ROOT/hack/tools/certmanager"

log() { printf '%s\n' "e2e-assets: $*" >&2; }

# Version of a module as required in a go.mod file.
modver() {
  awk -v m="$2" '
    $1 == "require" { $1 = ""; $0 = $0 }
    $1 == m && $2 ~ /^v[0-9]/ { print $2; exit }
  ' "$1/go.mod"
}

KUEUE_VERSION="$(modver "$KUEUE_TOOLS" sigs.k8s.io/kueue)"
CM_VERSION="$(modver "$CM_TOOLS" github.com/cert-manager/cert-manager)"
if [[ -z "$KUEUE_VERSION" || -z "$CM_VERSION" ]]; then
  log "cannot read sigs.k8s.io/kueue / github.com/cert-manager/cert-manager versions from hack/tools/*/go.mod"
  exit 1
fi

KUEUE_BIN="$CACHE/bin/kueue-$KUEUE_VERSION/kueue"
CM_BIN="$CACHE/bin/cert-manager-$CM_VERSION/cert-manager-e2e"

export GOWORK=off
export GOFLAGS="-mod=readonly -buildvcs=false"
export CGO_ENABLED=0

have() { [[ -f "$1" && -x "$1" && -s "$1" ]]; }

mkdir -p "$CACHE"
TMP_FILES=()
cleanup() { if ((${#TMP_FILES[@]})); then rm -rf -- "${TMP_FILES[@]}"; fi; }
trap cleanup EXIT

# build_one <tools module dir> <output path> <package> <ldflags>
build_one() {
  local dir="$1" out="$2" pkg="$3" ldflags="$4" tmp start
  have "$out" && return 0
  mkdir -p "$(dirname "$out")"
  tmp="$(mktemp "$out.tmp.XXXXXX")"
  TMP_FILES+=("$tmp")
  log "building $(basename "$out") from $pkg (first build takes several minutes) ..."
  start=$SECONDS
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg") >&2
  chmod 0755 "$tmp"
  mv -f "$tmp" "$out"
  log "built $out in $((SECONDS - start))s"
}

if ! have "$KUEUE_BIN" || ! have "$CM_BIN"; then
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE/.e2e-assets.lock"
    flock 9
  fi
  build_one "$KUEUE_TOOLS" "$KUEUE_BIN" sigs.k8s.io/kueue/cmd/kueue \
    "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION"
  build_one "$CM_TOOLS" "$CM_BIN" . "-s -w"
fi

# Module sources (for CRDs and config/): downloaded by the builds above, or on demand.
moddir() { (cd "$1" && go mod download "$2" >&2 && go list -m -f '{{.Dir}}' "$2"); }
KUEUE_DIR="$(moddir "$KUEUE_TOOLS" sigs.k8s.io/kueue)"
CM_DIR="$(moddir "$CM_TOOLS" github.com/cert-manager/cert-manager)"
KUBERAY_DIR="$(moddir "$ROOT" github.com/ray-project/kuberay/ray-operator)"
# The CRDs of the other kinds Kueue queues, from the very module versions Kueue is built against.
JOBSET_DIR="$(moddir "$KUEUE_TOOLS" sigs.k8s.io/jobset)"
LWS_DIR="$(moddir "$KUEUE_TOOLS" sigs.k8s.io/lws)"
TRAINING_OPERATOR_DIR="$(moddir "$KUEUE_TOOLS" github.com/kubeflow/training-operator)"

printf 'KUEUE_BIN=%s\nKUEUE_DIR=%s\nCERT_MANAGER_BIN=%s\nCERT_MANAGER_DIR=%s\nKUBERAY_DIR=%s\n' \
  "$KUEUE_BIN" "$KUEUE_DIR" "$CM_BIN" "$CM_DIR" "$KUBERAY_DIR"
printf 'JOBSET_DIR=%s\nLWS_DIR=%s\nTRAINING_OPERATOR_DIR=%s\n' "$JOBSET_DIR" "$LWS_DIR" "$TRAINING_OPERATOR_DIR"
