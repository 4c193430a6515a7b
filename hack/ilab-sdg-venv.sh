#!/usr/bin/env bash
# A separate venv with InstructLab's SDG (instructlab-sdg 0.8.3 from PyPI) for bench/sdg.py: it pins openai<2, which
# vLLM's own requirements rule out, so it cannot share .venv. Prints the venv's python on stdout.
#
# Light install: the package without its dependency list, then only what its pipeline path imports. Left out are
# torch/transformers/numba/submodlib/h5py (subset selection, tokenizers for docling chunking) and docling's model
# stack: docling-slim (docling's code without its models) satisfies the module-level docling imports of
# instructlab.sdg.utils.chunkers. Cached and idempotent: a stamp keyed by this script makes a second run instant.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3.11}"
ILAB_SDG_VERSION="0.8.3"
cache="${LABRADOR_CACHE:-$HOME/.cache/labrador}"
venv="$cache/venvs/instructlab-sdg-$ILAB_SDG_VERSION"
stamp="$venv/.labrador-installed-$(sha256sum "$0" | cut -c1-16)"
if [[ -f "$stamp" ]]; then echo "$venv/bin/python"; exit 0; fi
log() { echo "[ilab-sdg-venv] $*" >&2; }

mkdir -p "$cache/venvs"
[[ -x "$venv/bin/python" ]] || { log "creating $venv with $PY"; "$PY" -m venv "$venv"; }
# uv from the project venv when it has one (fast, shares the cache), pip otherwise
if [[ -x "$root/.venv/bin/python" ]] && "$root/.venv/bin/python" -m uv --version >/dev/null 2>&1; then
  inst() { UV_CACHE_DIR="$cache/uv" UV_LINK_MODE=copy "$root/.venv/bin/python" -m uv pip install -q --python "$venv/bin/python" "$@"; }
else
  inst() { "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@"; }
fi
log "installing instructlab-sdg $ILAB_SDG_VERSION (no torch, no docling models)"
inst --no-deps "instructlab-sdg==$ILAB_SDG_VERSION"
inst \
  "click>=8.1.7,<9" "datasets>=2.18.0" "GitPython>=3.1.42,<4" "gguf>=0.6.0" "httpx>=0.25.0,<1" \
  "instructlab-schema>=0.4.0" "jinja2>=3.0.0" "openai>=1.13.3,<2" "tabulate>=0.9.0" "tenacity>=8.3.0,!=8.4.0" \
  "xdg-base-dirs>=6.0.1" "docling-slim>=2.100" "docling-core>=2.25.0" pyyaml
"$venv/bin/python" -c "import instructlab.sdg, openai; from instructlab.sdg import Pipeline" >&2
rm -f "$venv"/.labrador-installed-*
touch "$stamp"
log "done"
echo "$venv/bin/python"
