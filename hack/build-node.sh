#!/usr/bin/env bash
# Build what a real node runs beside the kubelet (built with the control plane, hack/build-control-plane.sh):
# containerd v2 + its runc shim, runc, the CNI plugins, CoreDNS, the OCI registry (distribution/v3) and the pause
# binary (Kubernetes' own pause.c, static). Everything comes from the Go module proxy (pause.c from the
# k8s.io/kubernetes module), pinned in hack/versions.sh, cached under ~/.cache/labrador/bin/<component>-<version>/.
# A warm cache makes this a no-op. Prints the directory of symlinks to all of them on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/versions.sh
. "$here/versions.sh"
export GOFLAGS="${GOFLAGS:--mod=mod}" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
log() { echo "[build-node] $*" >&2; }
bin="$LABRADOR_CACHE/bin"

go_install() { # dir ldflags tags cgo module@version...
  local dir="$1" ld="$2" tags="$3" cgo="$4"; shift 4
  local m ok=1
  for m in "$@"; do m="${m%@*}"; [[ -x "$dir/${m##*/}" ]] || ok=0; done
  (( ok )) && return 0
  log "building $*"
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  CGO_ENABLED="$cgo" GOBIN="$dir.tmp" go install -trimpath -tags "$tags" -ldflags "-s -w $ld" "$@" >&2
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
}

containerd_dir="$bin/containerd-v$CONTAINERD_VERSION"
runc_dir="$bin/runc-v$RUNC_VERSION"
cni_dir="$bin/cni-plugins-v$CNI_PLUGINS_VERSION"
coredns_dir="$bin/coredns-v$COREDNS_VERSION"
registry_dir="$bin/registry-v$REGISTRY_VERSION"
pause_dir="$bin/pause-k8s-v$K8S_VERSION"

cd_mod=github.com/containerd/containerd/v2
go_install "$containerd_dir" "-X $cd_mod/version.Version=v$CONTAINERD_VERSION" "no_btrfs" 0 \
  "$cd_mod/cmd/containerd@v$CONTAINERD_VERSION" "$cd_mod/cmd/containerd-shim-runc-v2@v$CONTAINERD_VERSION" \
  "$cd_mod/cmd/ctr@v$CONTAINERD_VERSION"
# runc needs cgo for seccomp (libseccomp-dev, `make system-packages`).
go_install "$runc_dir" "-X main.version=$RUNC_VERSION" "seccomp" 1 "github.com/opencontainers/runc@v$RUNC_VERSION"
cni=github.com/containernetworking/plugins/plugins
go_install "$cni_dir" "" "" 0 "$cni/main/bridge@v$CNI_PLUGINS_VERSION" "$cni/main/loopback@v$CNI_PLUGINS_VERSION" \
  "$cni/ipam/host-local@v$CNI_PLUGINS_VERSION" "$cni/meta/portmap@v$CNI_PLUGINS_VERSION"
go_install "$coredns_dir" "-X github.com/coredns/coredns/coremain.GitCommit=v$COREDNS_VERSION" "" 0 \
  "github.com/coredns/coredns@v$COREDNS_VERSION"
go_install "$registry_dir" "-X github.com/distribution/distribution/v3/version.version=v$REGISTRY_VERSION" "" 0 \
  "github.com/distribution/distribution/v3/cmd/registry@v$REGISTRY_VERSION"

if [[ ! -x "$pause_dir/pause" ]]; then
  log "building pause from k8s.io/kubernetes@v$K8S_VERSION build/pause/linux/pause.c"
  src=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  rm -rf "$pause_dir.tmp"; mkdir -p "$pause_dir.tmp"
  gcc -Os -Wall -Werror -static -DVERSION="v$K8S_VERSION-labrador" -o "$pause_dir.tmp/pause" \
    "$src/build/pause/linux/pause.c"
  strip "$pause_dir.tmp/pause"
  rm -rf "$pause_dir"; mv "$pause_dir.tmp" "$pause_dir"
fi

out="$bin/node-containerd-v$CONTAINERD_VERSION-runc-v$RUNC_VERSION-cni-v$CNI_PLUGINS_VERSION-coredns-v$COREDNS_VERSION-registry-v$REGISTRY_VERSION-k8s-v$K8S_VERSION"
mkdir -p "$out"
for f in "$containerd_dir"/* "$runc_dir"/* "$coredns_dir"/* "$registry_dir"/* "$pause_dir"/*; do
  ln -sfn "$f" "$out/$(basename "$f")"
done
mkdir -p "$out/cni"
for f in "$cni_dir"/*; do ln -sfn "$f" "$out/cni/$(basename "$f")"; done
echo "$out"
