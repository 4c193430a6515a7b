#!/usr/bin/env bash
# Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, the node's kubelet and kube-proxy,
# kwok and helm from the Go module proxy and cache them under ~/.cache/labrador/bin/<component>-<version>/. A warm cache makes this a no-op.
# Prints the directory that holds all binaries for the chosen versions (a directory of symlinks) on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/versions.sh
. "$here/versions.sh"
export GOFLAGS="${GOFLAGS:--mod=mod}" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
log() { echo "[build-control-plane] $*" >&2; }

resolve_k8s() { # 1.37.x -> newest served v1.37.N
  local v="${1#v}"
  if [[ "$v" == *.x ]]; then
    local minor="${v%.x}"
    v=$(go list -m -versions "k8s.io/kubernetes" | tr ' ' '\n' | grep -E "^v${minor//./\\.}\.[0-9]+$" \
        | sort -t. -k3 -n | tail -1)
    [[ -n "$v" ]] || { log "no k8s.io/kubernetes release matches $1"; exit 1; }
    v="${v#v}"
  fi
  echo "$v"
}
K8S="$(resolve_k8s "$K8S_VERSION")"
K8S_MINOR="$(echo "$K8S" | cut -d. -f2)"
if [[ -z "$ETCD_VERSION" ]]; then
  if (( K8S_MINOR >= 36 )); then ETCD_VERSION=3.6.16; else ETCD_VERSION=3.6.4; fi
fi

k8s_dir="$LABRADOR_CACHE/bin/kubernetes-v$K8S"
etcd_dir="$LABRADOR_CACHE/bin/etcd-v$ETCD_VERSION"
kwok_dir="$LABRADOR_CACHE/bin/kwok-v$KWOK_VERSION"
helm_dir="$LABRADOR_CACHE/bin/helm-v$HELM_VERSION-k8s1.$HELM_K8S_MINOR"
out_dir="$LABRADOR_CACHE/bin/set-k8s-v$K8S-etcd-v$ETCD_VERSION-kwok-v$KWOK_VERSION-helm-v$HELM_VERSION-k8s1.$HELM_K8S_MINOR"
src="$LABRADOR_CACHE/src"
K8S_BINARIES="kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy"
mkdir -p "$src"

build_k8s() {
  local b ok=1
  for b in $K8S_BINARIES; do [[ -x "$k8s_dir/$b" ]] || ok=0; done
  (( ok )) && return 0
  # One `go build` for all of them: the kubelet and kube-proxy share most packages with the control plane, so they
  # cost ~100 extra packages here instead of a second build of ~1,700.
  log "building Kubernetes v$K8S ($K8S_BINARIES); ~15 min cold"
  local w="$src/kubernetes-v$K8S"; mkdir -p "$w"
  local gomod; gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  {
    echo "module labrador.dev/controlplane"
    echo "go $(awk '/^go /{print $2; exit}' "$gomod")"
    echo "require k8s.io/kubernetes v$K8S"
    # go refuses replace directives in dependencies: restate kubernetes' staging replaces with real versions.
    grep -E '^\s*k8s.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk -v v="v0.$K8S_MINOR.${K8S##*.}" '{print "replace " $1 " => " $1 " " v}'
  } > "$w/go.mod"
  cat > "$w/tools.go" <<'GO'
package controlplane
GO
  (cd "$w" && go get "k8s.io/kubernetes@v$K8S" >&2 && \
   go get "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S" "k8s.io/kubernetes/cmd/kube-controller-manager@v$K8S" \
          "k8s.io/kubernetes/cmd/kube-scheduler@v$K8S" "k8s.io/kubernetes/cmd/kubectl@v$K8S" \
          "k8s.io/kubernetes/cmd/kubelet@v$K8S" "k8s.io/kubernetes/cmd/kube-proxy@v$K8S" >&2)
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S -X k8s.io/component-base/version.gitMajor=1"
  ld+=" -X k8s.io/component-base/version.gitMinor=$K8S_MINOR -X k8s.io/component-base/version.gitTreeState=clean"
  ld+=" -X k8s.io/client-go/pkg/version.gitVersion=v$K8S -X k8s.io/client-go/pkg/version.gitMajor=1"
  ld+=" -X k8s.io/client-go/pkg/version.gitMinor=$K8S_MINOR"
  mkdir -p "$k8s_dir.tmp"
  local pkgs=() ; for b in $K8S_BINARIES; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  (cd "$w" && go build -trimpath -ldflags "$ld" -o "$k8s_dir.tmp/" "${pkgs[@]}" >&2)
  rm -rf "$k8s_dir"; mv "$k8s_dir.tmp" "$k8s_dir"
}

build_etcd() {
  [[ -x "$etcd_dir/etcd" ]] && return 0
  log "building etcd v$ETCD_VERSION; ~30 s cold"
  local w="$src/etcd-v$ETCD_VERSION"; mkdir -p "$w"
  printf 'module labrador.dev/etcd\ngo 1.24\nrequire go.etcd.io/etcd/server/v3 v%s\n' "$ETCD_VERSION" > "$w/go.mod"
  (cd "$w" && go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >&2)
  mkdir -p "$etcd_dir.tmp"
  (cd "$w" && go build -trimpath -ldflags "-s -w" -o "$etcd_dir.tmp/etcd" go.etcd.io/etcd/server/v3 >&2)
  rm -rf "$etcd_dir"; mv "$etcd_dir.tmp" "$etcd_dir"
}

build_go_install() { # name dir module@version ldflags
  local name="$1" dir="$2" mod="$3" ld="$4"
  [[ -x "$dir/$name" ]] && return 0
  log "building $mod; ~2 min cold"
  mkdir -p "$dir.tmp"
  GOBIN="$dir.tmp" go install -trimpath -ldflags "-s -w $ld" "$mod" >&2
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
}

build_etcd
build_k8s
build_go_install kwok "$kwok_dir" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION" \
  "-X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION"
build_go_install helm "$helm_dir" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION" \
  "-X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION \
   -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR \
   -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR"

mkdir -p "$out_dir"
for f in "$k8s_dir"/* "$etcd_dir/etcd" "$kwok_dir/kwok" "$helm_dir/helm"; do ln -sfn "$f" "$out_dir/$(basename "$f")"; done
echo "$out_dir"
