#!/usr/bin/env bash
# Build Kubeflow's training-operator (the Go peer of the scale benchmark) from the Go module proxy and cache it, with
# its PyTorchJob CRD taken from the same module, under ~/.cache/labrador/bin/training-operator-v<version>/:
#   training-operator.v1                  the operator binary
#   crds/kubeflow.org_pytorchjobs.yaml    the CRD, copied from the module's manifests/base/crds/
# A warm cache makes this a no-op. Prints that directory on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/versions.sh
. "$here/versions.sh"
: "${TRAINING_OPERATOR_VERSION:=1.8.1}"
export GOFLAGS="${GOFLAGS:--mod=mod}" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
log() { echo "[training-operator] $*" >&2; }

mod="github.com/kubeflow/training-operator"
dir="$LABRADOR_CACHE/bin/training-operator-v$TRAINING_OPERATOR_VERSION"
crd="crds/kubeflow.org_pytorchjobs.yaml"

if [[ -x "$dir/training-operator.v1" && -s "$dir/$crd" ]]; then
  echo "$dir"
  exit 0
fi
log "building $mod v$TRAINING_OPERATOR_VERSION; ~2 min cold"
src=$(go mod download -json "$mod@v$TRAINING_OPERATOR_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp/crds"
cp "$src/manifests/base/$crd" "$dir.tmp/$crd"
GOBIN="$dir.tmp" go install -trimpath -ldflags "-s -w" "$mod/cmd/training-operator.v1@v$TRAINING_OPERATOR_VERSION" >&2
chmod -R u+w "$dir.tmp"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "$dir"
