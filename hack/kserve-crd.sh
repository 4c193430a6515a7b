#!/usr/bin/env bash
# KServe's InferenceService CRD (serving.kserve.io/v1beta1), the real one, from the Go module proxy, cached under
# ~/.cache/labrador/bin/kserve-v<version>/:
#   crds/serving.kserve.io_inferenceservices.yaml   copied from the module's config/crd/full/
# Only the CRD: the integration tier installs it into its kube-apiserver so the operator's InferenceServices are
# validated by KServe's own schema; no KServe controller runs (tests/integration/test_finetune.py plays its part by
# writing the status). A warm cache makes this a no-op. Prints that directory on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/versions.sh
. "$here/versions.sh"
: "${KSERVE_VERSION:=0.16.0}"
export GOFLAGS="${GOFLAGS:--mod=mod}" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
log() { echo "[kserve-crd] $*" >&2; }

mod="github.com/kserve/kserve"
dir="$LABRADOR_CACHE/bin/kserve-v$KSERVE_VERSION"
crd="crds/serving.kserve.io_inferenceservices.yaml"

if [[ -s "$dir/$crd" ]]; then
  echo "$dir"
  exit 0
fi
log "fetching $mod v$KSERVE_VERSION from the Go module proxy (~30 MB) for its InferenceService CRD"
src=$(go mod download -json "$mod@v$KSERVE_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp/crds"
cp "$src/config/crd/full/serving.kserve.io_inferenceservices.yaml" "$dir.tmp/$crd"
chmod -R u+w "$dir.tmp"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "$dir"
