#!/usr/bin/env bash
# Builds (once, then caches) the control-plane binaries that controller-runtime
# envtest needs -- kube-apiserver, kubectl and etcd -- from source, through the
# separate Go module in hack/tools/kube (versions pinned by its go.mod/go.sum).
#
# Cache layout (git-ignored, relative to the repo root):
#   .cache/bin/k8s-<k8s version>/{kube-apiserver,kubectl}
#   .cache/bin/etcd-<etcd version>/etcd
#   .cache/envtest/<k8s version>-etcd-<etcd version>/{kube-apiserver,kubectl,etcd}
#
# Prints the absolute path of the envtest folder as its only stdout line, e.g.
#   export KUBEBUILDER_ASSETS="$(hack/envtest-assets.sh)"
# All build output goes to stderr. A binary is built only when missing; builds
# go to a temp file that is renamed into place, so an interrupted build never
# leaves a half-written binary behind. Concurrent runs are serialised by a lock.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
TOOLS="$ROOT/hack/tools/kube"
CACHE="$ROOT/.cache"

log() { printf '%s\n' "envtest-assets: $*" >&2; }

# Version of a module as required in the tools module's go.mod.
modver() {
  awk -v m="$1" '
    $1 == "require" { $1 = ""; $0 = $0 }
    $1 == m && $2 ~ /^v[0-9]/ { print $2; exit }
  ' "$TOOLS/go.mod"
}

K8S_VERSION="$(modver k8s.io/kubernetes)"
ETCD_VERSION="$(modver go.etcd.io/etcd/server/v3)"
if [[ -z "$K8S_VERSION" || -z "$ETCD_VERSION" ]]; then
  log "cannot read k8s.io/kubernetes / go.etcd.io/etcd/server/v3 versions from $TOOLS/go.mod"
  exit 1
fi

K8S_BIN="$CACHE/bin/k8s-$K8S_VERSION"
ETCD_BIN="$CACHE/bin/etcd-$ETCD_VERSION"
ASSETS="$CACHE/envtest/$K8S_VERSION-etcd-$ETCD_VERSION"

# Hermetic-ish go environment for the tools module: never pick up a go.work,
# never rewrite go.mod/go.sum (the committed go.sum is the pin), static binary.
export GOWORK=off
export GOFLAGS="-mod=readonly -buildvcs=false"
export CGO_ENABLED=0

have() { [[ -f "$1" && -x "$1" && -s "$1" ]]; }

all_present() {
  have "$K8S_BIN/kube-apiserver" && have "$K8S_BIN/kubectl" && have "$ETCD_BIN/etcd" &&
    have "$ASSETS/kube-apiserver" && have "$ASSETS/kubectl" && have "$ASSETS/etcd"
}

# Fast path: everything cached, no lock, no go invocation.
if all_present; then
  printf '%s\n' "$ASSETS"
  exit 0
fi

mkdir -p "$CACHE"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.envtest-assets.lock"
  flock 9
fi

TMP_FILES=()
cleanup() { if ((${#TMP_FILES[@]})); then rm -rf -- "${TMP_FILES[@]}"; fi; }
trap cleanup EXIT

# build_one <output path> <package> <ldflags>
build_one() {
  local out="$1" pkg="$2" ldflags="$3" tmp start
  if have "$out"; then
    return 0
  fi
  mkdir -p "$(dirname "$out")"
  tmp="$(mktemp "$out.tmp.XXXXXX")"
  TMP_FILES+=("$tmp")
  log "building $(basename "$out") from $pkg (first build can take ~15 min) ..."
  start=$SECONDS
  (cd "$TOOLS" && go build -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg") >&2
  chmod 0755 "$tmp"
  mv -f "$tmp" "$out"
  log "built $out in $((SECONDS - start))s"
}

# Same variables as kubernetes' hack/lib/version.sh (kube::version::ldflags),
# set in both k8s.io/component-base/version and k8s.io/client-go/pkg/version.
# buildDate is the release's module timestamp, so rebuilds are reproducible.
kube_ldflags() {
  local major minor build_date key val flags="-s -w"
  major="${K8S_VERSION#v}"; major="${major%%.*}"
  minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
  build_date="$(cd "$TOOLS" && go list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes)"
  build_date="${build_date:-1970-01-01T00:00:00Z}"
  for kv in "gitVersion=$K8S_VERSION" "gitMajor=$major" "gitMinor=$minor" \
    "gitCommit=" "gitTreeState=clean" "buildDate=$build_date"; do
    key="${kv%%=*}"; val="${kv#*=}"
    flags+=" -X k8s.io/component-base/version.$key=$val"
    flags+=" -X k8s.io/client-go/pkg/version.$key=$val"
  done
  printf '%s' "$flags"
}

if ! have "$K8S_BIN/kube-apiserver" || ! have "$K8S_BIN/kubectl"; then
  KUBE_LDFLAGS="$(kube_ldflags)"
  build_one "$K8S_BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver "$KUBE_LDFLAGS"
  build_one "$K8S_BIN/kubectl" k8s.io/kubernetes/cmd/kubectl "$KUBE_LDFLAGS"
fi
# etcd's version string is a source constant (go.etcd.io/etcd/api/v3/version.Version
# == "3.7.0" in v3.7.0), so it needs no -X; its GitSHA is not knowable here.
build_one "$ETCD_BIN/etcd" go.etcd.io/etcd/server/v3 "-s -w"

# Assemble the KUBEBUILDER_ASSETS folder from relative symlinks (atomic swap).
mkdir -p "$ASSETS"
link() {
  local target="$1" name="$2" tmp
  tmp="$(mktemp -u "$ASSETS/.$name.XXXXXX")"
  ln -s "$target" "$tmp"
  mv -Tf "$tmp" "$ASSETS/$name"
}
link "../../bin/k8s-$K8S_VERSION/kube-apiserver" kube-apiserver
link "../../bin/k8s-$K8S_VERSION/kubectl" kubectl
link "../../bin/etcd-$ETCD_VERSION/etcd" etcd

all_present || { log "assets folder $ASSETS is incomplete"; exit 1; }
printf '%s\n' "$ASSETS"
