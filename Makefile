# platform-operator: `make help` lists the targets.
include hack/versions.env

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CACHE ?= $(or $(PLATFORM_CACHE),$(HOME)/.cache/platform-operator)
export PLATFORM_CACHE := $(CACHE)
BIN := $(CACHE)/bin/current
# The uv of hack/versions.env: the one on PATH when it is that version, else installed here by `make uv`.
UV_HOME := $(CACHE)/uv/$(UV_VERSION)
export PATH := $(UV_HOME)/bin:$(PATH)
UV ?= uv
PY := $(UV) run --locked --all-packages
DEMO_CLUSTER ?= platform
TEST_CLUSTER ?= platform-test
DEMO_NAMESPACE ?= demo
KEEP_CLUSTER ?= 0

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Setup

.PHONY: uv
uv: ## Install uv $(UV_VERSION) (hack/versions.env) into $(UV_HOME) unless that version is on PATH.
	hack/install-uv.sh $(UV_HOME)

.PHONY: setup
setup: uv ## Install the locked Python dependencies into .venv (uv sync --locked).
	$(UV) sync --locked --all-packages

.PHONY: tools
tools: ## Build etcd, kube-*, kubectl, kwok(ctl), helm, helm-docs and kube-score from source into $(CACHE)/bin (cached by version).
	hack/build-cluster-tools.sh

.PHONY: lint-tools
lint-tools: ## Build only what the chart's lint needs: helm, helm-docs, kube-score (cached by version; seconds when warm).
	hack/build-cluster-tools.sh helm helm-docs kube-score >/dev/null

##@ Lint

.PHONY: lint
lint: setup ## ruff, mypy (strict), bandit, the import layering contract, then chart-lint and kube-score.
	$(PY) ruff check .
	$(PY) ruff format --check .
	$(PY) mypy
	$(PY) bandit -q -c pyproject.toml -r operator
	$(PY) lint-imports
	$(MAKE) --no-print-directory chart-lint kube-score

.PHONY: kube-score
kube-score: setup lint-tools ## kube-score on the rendered chart (no CRITICAL) and on the builders' children of samples/ (hack/kube-score.sh).
	PATH=$(BIN):$$PATH hack/kube-score.sh

.PHONY: fmt
fmt: ## Format and autofix with ruff.
	$(PY) ruff format .
	$(PY) ruff check --fix .

##@ Test

.PHONY: test
test: lint test-unit test-e2e ## Everything CI runs: lint, unit, then e2e on a local control plane started and stopped here.

.PHONY: test-unit
test-unit: setup ## Unit tests of the pure code (no cluster).
	$(PY) pytest tests/unit -q

.PHONY: test-e2e
test-e2e: setup tools ## Integration, e2e, services and flow tests on their own control plane, RabbitMQ, Redis, PostgreSQL, FerretDB.
	CLUSTER_NAME=$(TEST_CLUSTER) KEEP_CLUSTER=$(KEEP_CLUSTER) PLATFORM_E2E_FULL_RUN=1 hack/with-cluster.sh hack/test-suites.sh

##@ Cluster

.PHONY: cluster-up
cluster-up: ## Start the local control plane ($(DEMO_CLUSTER)); prints the KUBECONFIG to export.
	CLUSTER_NAME=$(DEMO_CLUSTER) hack/cluster.sh up

.PHONY: cluster-down
cluster-down: ## Stop the operator started by `make demo`, delete the local control plane and the local servers.
	-hack/operator.sh stop $(DEMO_CLUSTER)
	CLUSTER_NAME=$(DEMO_CLUSTER) hack/cluster.sh down
	hack/postgres.sh down
	hack/backends.sh down

.PHONY: install-crd
install-crd: ## Apply crds/ to the cluster in KUBECONFIG and wait until it is established.
	kubectl apply --server-side -f crds/
	kubectl wait --for=condition=Established --timeout=60s crd/platformservices.platform.dev

##@ Chart

HELM_DOCS := $(BIN)/helm-docs --chart-search-root charts --sort-values-order file --skip-version-footer

.PHONY: chart-lint
chart-lint: lint-tools ## helm lint --strict the chart (values checked by values.schema.json); charts/README.md is current.
	$(BIN)/helm lint --strict charts/
	@$(HELM_DOCS) --dry-run 2>/dev/null | diff -u charts/README.md - \
	  || { echo "charts/README.md is not what values.yaml generates: run make chart-docs" >&2; exit 1; }
	@echo "charts/README.md is current (helm-docs $(HELM_DOCS_VERSION))"

.PHONY: chart-docs
chart-docs: lint-tools ## Regenerate charts/README.md (every value) from values.yaml's `# --` comments with helm-docs.
	$(HELM_DOCS)

.PHONY: chart-crds
chart-crds: ## Copy crds/ (the source of truth) into the chart's crds/ folder.
	cp crds/platformservices.platform.dev.yaml charts/crds/

##@ Bench

BENCH_MEMORY_N ?= 1000
BENCH_SIZES ?= 100,300,1000,3000

.PHONY: bench
bench: setup tools ## Operator vs direct apply at N=$(BENCH_SIZES); writes bench/results/ (results.md, .json, .png).
	CLUSTER_NAME=platform-bench BACKENDS_NAME=platform-bench REDIS_PORT=6396 RABBITMQ_PORT=5696 \
	  RABBITMQ_MANAGEMENT_PORT=15696 POSTGRES_PORT=5446 FERRETDB_PORT=27096 \
	  hack/with-cluster.sh $(UV) run --locked --all-packages --group bench python bench/run.py --sizes $(BENCH_SIZES)

.PHONY: bench-memory
bench-memory: setup tools ## Where the operator's memory goes at N=$(BENCH_MEMORY_N) (tracemalloc); writes bench/results/memory-profile.md.
	CLUSTER_NAME=platform-bench-memory BACKENDS_NAME=platform-bench-memory REDIS_PORT=6397 RABBITMQ_PORT=5697 \
	  RABBITMQ_MANAGEMENT_PORT=15697 POSTGRES_PORT=5447 FERRETDB_PORT=27097 \
	  hack/with-cluster.sh $(UV) run --locked --all-packages --group bench python bench/memory.py -n $(BENCH_MEMORY_N)

##@ Backends

.PHONY: backends-up
backends-up: ## Start a local Redis and RabbitMQ on loopback (apt-installs them if missing; data in $(CACHE)/backends).
	hack/backends.sh up
	@echo '[backends] for the PLATFORM_* variables: eval "$$(hack/backends.sh env)"'

.PHONY: backends-down
backends-down: ## Stop the local Redis and RabbitMQ and delete their data.
	hack/backends.sh down

##@ Demo

.PHONY: demo
demo: setup cluster-up backends-up ## Local control plane, RabbitMQ, Redis, PostgreSQL, CRD, operator, samples/; waits until all are Ready.
	hack/postgres.sh up
	@export KUBECONFIG=$(CACHE)/kubeconfig-$(DEMO_CLUSTER) PATH=$(BIN):$$PATH; \
	eval "$$(hack/backends.sh env)"; \
	eval "$$(hack/postgres.sh env)"; \
	echo "[demo] installing the CRD"; \
	$(MAKE) --no-print-directory install-crd; \
	echo "[demo] starting the operator (log: $(CACHE)/operator-$(DEMO_CLUSTER).log)"; \
	hack/operator.sh start $(DEMO_CLUSTER); \
	kubectl create namespace $(DEMO_NAMESPACE) --dry-run=client -o yaml | kubectl apply -f - >/dev/null; \
	echo "[demo] applying samples/ to namespace $(DEMO_NAMESPACE)"; \
	kubectl -n $(DEMO_NAMESPACE) apply -f samples/; \
	echo "[demo] waiting until every PlatformService is Ready"; \
	kubectl -n $(DEMO_NAMESPACE) wait psvc --all --for=condition=Ready --timeout=180s; \
	kubectl -n $(DEMO_NAMESPACE) get psvc -o wide; \
	echo; echo "[demo] RabbitMQ queues (rabbitmqctl list_queues):"; \
	hack/backends.sh ctl -q list_queues name messages consumers; \
	echo; echo "[demo] Redis users (ACL LIST, password hashes elided):"; \
	hack/backends.sh redis-cli ACL LIST | sed -E 's/#[0-9a-f]{64}/#<sha256>/g'; \
	echo; echo "[demo] PostgreSQL databases the operator provisioned (hack/postgres.sh, owner = the service's role):"; \
	hack/postgres.sh psql -X -c "SELECT datname AS database, pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname LIKE '$(subst -,_,$(DEMO_NAMESPACE))\_%'"; \
	echo; echo "[demo] done. export KUBECONFIG=$(CACHE)/kubeconfig-$(DEMO_CLUSTER) to look around; make cluster-down to stop."

.PHONY: run
run: setup ## Run the operator in the foreground against KUBECONFIG (and the servers of `make backends-up`).
	eval "$$(hack/backends.sh env 2>/dev/null)"; $(PY) python -m platform_operator

##@ kind

KIND_CLUSTER ?= platform
KEEP_KIND ?= 0

.PHONY: image
image: ## Build the operator image platform-operator:dev (operator/Dockerfile; needs Docker).
	docker build -f operator/Dockerfile --build-arg UV_VERSION=$(UV_VERSION) -t platform-operator:dev .

.PHONY: docker-up
docker-up: ## Offline machines: start the project's own dockerd (Debian docker.io + runtime wrapper for privileged containers).
	hack/offline/docker-engine.sh up

.PHONY: docker-down
docker-down: ## Stop the dockerd of `make docker-up` (images stay in /var/lib/platform-docker).
	hack/offline/docker-engine.sh down

.PHONY: kind-images
kind-images: ## Offline machines: build the kind node image, the Python base, the operator, services, dev servers and ingress images (cached).
	hack/offline/docker-engine.sh up
	hack/offline/kind-node-image.sh build
	hack/offline/images.sh all
	hack/offline/ingress-image.sh build

.PHONY: kind-up
kind-up: ## Create (or reuse) the kind cluster $(KIND_CLUSTER) with its ingress controller; prints the KUBECONFIG to export.
	KIND_CLUSTER=$(KIND_CLUSTER) hack/kind.sh up

.PHONY: kind-down
kind-down: ## Delete the kind cluster $(KIND_CLUSTER).
	KIND_CLUSTER=$(KIND_CLUSTER) hack/kind.sh down

.PHONY: kind-test
kind-test: ## kind: cluster, images, chart, e2e, samples, ingress; then deletes it (KEEP_KIND=1 keeps it). Offline: built here (KIND_OFFLINE).
	KIND_CLUSTER=$(KIND_CLUSTER) KEEP_KIND=$(KEEP_KIND) hack/kind.sh all
