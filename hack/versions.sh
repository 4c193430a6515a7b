# Pinned versions of the local control plane. Sourced by hack/*.sh and read by tests/conftest.py.
# K8S_VERSION may be given as 1.34.1, v1.34.1 or 1.37.x (x = newest patch the Go module proxy serves).
: "${K8S_VERSION:=1.34.4}"
: "${ETCD_VERSION:=}"
: "${KWOK_VERSION:=0.8.0}"
: "${HELM_VERSION:=3.19.0}"
# Kubernetes minor that helm v3.19 is built against (its default for `helm template` and lint).
: "${HELM_K8S_MINOR:=34}"
LABRADOR_CACHE="${LABRADOR_CACHE:-$HOME/.cache/labrador}"
# The real node (hack/build-node.sh; DESIGN.md §5 "A real node").
: "${CONTAINERD_VERSION:=2.4.2}"
: "${RUNC_VERSION:=1.5.3}"
: "${CNI_PLUGINS_VERSION:=1.10.0}"
: "${COREDNS_VERSION:=1.14.7}"
: "${REGISTRY_VERSION:=3.1.2}"
