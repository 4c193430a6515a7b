#!/usr/bin/env bash
# `make images`: build labrador-operator and labrador-trainer (VARIANTS="cpu", or "cpu gpu") from their Containerfiles
# with buildah (Debian's package), FROM a local Debian base made with debootstrap (no registry serves base images
# here; elsewhere pass BASE=docker.io/library/debian:bookworm-slim and skip that step).
#
# Images live in containers-storage under ~/.cache/labrador/containers (overlay driver) and are tagged by a content
# hash of everything that goes into them (Containerfile, lock, sources, base, build arguments): a warm run finds
# the tag and builds nothing. Layer caching (--layers) keeps the locked-dependency layer across source changes.
# Only the newest build of each image is kept. Prints one line per image: `<name> <local reference>`; each build is
# also tagged with the name it is published under (the chart's default, `--names` prints them).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=hack/images-versions.sh
. hack/images-versions.sh
cache="${LABRADOR_CACHE:-$HOME/.cache/labrador}"
VARIANTS="${VARIANTS:-cpu}"
log() { echo "[images] $*" >&2; }
storage=(--root "$cache/containers/storage" --runroot "${XDG_RUNTIME_DIR:-/run}/labrador-containers"
         --storage-driver overlay)
bah() { buildah "${storage[@]}" "$@"; }
have() { bah inspect --type image "$1" >/dev/null 2>&1; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
# the names the images are published under (the chart's defaults: its appVersion is this version)
IMAGE_REGISTRY="${IMAGE_REGISTRY:-ghcr.io/labrador-dev}"
published() { # name variant: the operator and the gpu trainer at the version, other variants suffixed
  if [[ -z "$2" || "$2" == gpu ]]; then echo "$IMAGE_REGISTRY/$1:$version"; else echo "$IMAGE_REGISTRY/$1:$version-$2"; fi
}
if [[ "${1:-}" == --names ]]; then
  echo "labrador-operator $(published labrador-operator "")"
  for v in cpu gpu; do echo "labrador-trainer-$v $(published labrador-trainer "$v")"; done
  exit 0
fi
command -v buildah >/dev/null || { log "buildah is missing: make system-packages (apt-get install buildah)"; exit 1; }
[[ "$(id -u)" = 0 ]] || { log "buildah builds here as root (chroot isolation): run as root"; exit 1; }
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
[[ -z "$(git status --porcelain -- operator trainer_image pyproject.toml README.md 2>/dev/null)" ]] || revision="$revision-dirty"

mkdir -p "$cache/images"
if [[ "${1:-}" == pause ]]; then # hack/images.sh pause PAUSE_BINARY: the real node's sandbox image
  key=$(cat "$2" hack/images/pause.Containerfile | sha256sum | cut -c1-12)
  ref="localhost/pause:3.10-labrador-$key"
  if ! have "$ref"; then
    ctx=$(mktemp -d); cp "$2" "$ctx/pause"; cp hack/images/pause.Containerfile "$ctx/Containerfile"
    bah bud --quiet --isolation chroot -f "$ctx/Containerfile" -t "$ref" "$ctx" >/dev/null; rm -rf "$ctx"
  fi
  echo "pause $ref"; exit 0
fi

# --- base: debootstrap --variant=minbase, the same Debian release as debian:bookworm-slim ------------------------
if [[ -z "${BASE:-}" ]]; then
  dbs_version=$(dpkg-query -W -f '${Version}' debootstrap 2>/dev/null || echo none)
  base_key=$(printf '%s\n' "$DEBIAN_SUITE" minbase "$dbs_version" "$(cat hack/images/base.Containerfile)" | sha256sum | cut -c1-12)
  BASE="localhost/labrador-base:$DEBIAN_SUITE-$base_key"
  if ! have "$BASE"; then
    command -v debootstrap >/dev/null || { log "debootstrap is missing: make system-packages"; exit 1; }
    t0=$(date +%s)
    work="$cache/images/base-$base_key"; rm -rf "$work"; mkdir -p "$work"
    log "debootstrap --variant=minbase $DEBIAN_SUITE (cold: ~1-6 min)"
    debootstrap --variant=minbase "$DEBIAN_SUITE" "$work/rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" \
      > "$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
    tar -C "$work/rootfs" --numeric-owner -cf "$work/rootfs.tar" .
    rm -rf "$work/rootfs"
    cp hack/images/base.Containerfile "$work/Containerfile"
    bah bud --quiet --isolation chroot -f "$work/Containerfile" -t "$BASE" "$work" >/dev/null
    rm -rf "$work"
    log "base $BASE built in $(( $(date +%s) - t0 ))s"
  fi
fi
base_id=$(bah inspect --type image --format '{{.FromImageID}}' "$BASE" 2>/dev/null || echo "$BASE")

# --- the images ------------------------------------------------------------------------------------------------
sources_hash() { # files that go into the build context, by content
  git ls-files -co --exclude-standard -- "$@" | LC_ALL=C sort | while read -r f; do
    [[ -f "$f" ]] && printf '%s %s\n' "$(sha256sum < "$f" | cut -c1-64)" "$f"
  done | sha256sum | cut -c1-16
}
src_hash=$(sources_hash pyproject.toml README.md operator/labrador_operator trainer_image/labrador_trainer)

prune_cache() { # untagged layer-cache images that are not an ancestor of a tagged image (stale sources or locks)
  bah images --all --format '{{.ID}} {{.Name}}' | python3 -c '
import json, subprocess, sys
storage = sys.argv[1:]
images = [line.split() for line in sys.stdin.read().splitlines()]
def chain(i):
    out = subprocess.run(["buildah", *storage, "inspect", "--type", "image", i], capture_output=True, text=True)
    return json.loads(out.stdout)["OCIv1"]["rootfs"]["diff_ids"] if out.returncode == 0 else None
tagged = [c for i, n in images if n != "<none>" for c in [chain(i)] if c]
for i, n in images:
    c = chain(i) if n == "<none>" else None
    if c is not None and not any(t[: len(c)] == c for t in tagged):
        subprocess.run(["buildah", *storage, "rmi", i], capture_output=True)
' "${storage[@]}"
}

build() { # name containerfile lock variant
  local name="$1" file="$2" lock="$3" variant="$4"
  local key; key=$(printf '%s\n' "$base_id" "$src_hash" "$(sha256sum < "$file")" "$(sha256sum < "$lock")" \
                   "$variant" "$version" "$UV_VERSION" | sha256sum | cut -c1-12)
  local ref="localhost/$name:$version${variant:+-$variant}-$key"
  if ! have "$ref"; then
    local t0; t0=$(date +%s)
    log "building $ref (cold trainer: several minutes)"
    mkdir -p "$cache/uv"
    local args=(--isolation chroot --layers -f "$file" --build-arg "BASE=$BASE" --build-arg "VERSION=$version"
                --build-arg "REVISION=$revision" --build-arg "UV_VERSION=$UV_VERSION"
                --build-arg "UV_CACHE_DIR=/var/cache/uv-build" --volume "$cache/uv:/var/cache/uv-build")
    [[ -n "$variant" ]] && args+=(--build-arg "VARIANT=$variant")
    # the host's CA bundle for PyPI over TLS (a proxy's CA here); a build-time mount, never in the image
    [[ -f /etc/ssl/certs/ca-certificates.crt ]] && args+=(--volume /etc/ssl/certs/ca-certificates.crt:/run/host-ca.pem:ro
                                                          --build-arg SSL_CERT_FILE=/run/host-ca.pem --build-arg PIP_CERT=/run/host-ca.pem)
    bah bud "${args[@]}" -t "$ref" . > "$cache/images/$name${variant:+-$variant}.build.log" 2>&1 \
      || { tail -30 "$cache/images/$name${variant:+-$variant}.build.log" >&2; exit 1; }
    # keep only this build of the image (older content keys), then the cached layers no kept image stands on
    bah images --format '{{.Name}}:{{.Tag}}' | grep -E "^localhost/$name:$version${variant:+-$variant}-" \
      | grep -vx "$ref" | xargs -r buildah "${storage[@]}" rmi >/dev/null 2>&1 || true
    prune_cache
    log "built $ref in $(( $(date +%s) - t0 ))s ($(bah images --format '{{.Size}}' "$ref"))"
  fi
  bah tag "$ref" "$(published "$name" "$variant")"  # the chart's default name points at this commit's build
  echo "$name${variant:+-$variant} $ref"
}

build labrador-operator operator/Containerfile operator/requirements.lock ""
for v in $VARIANTS; do
  build labrador-trainer trainer_image/Containerfile "trainer_image/requirements-$v.lock" "$v"
done
