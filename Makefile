# wattscale developer entry points. `make demo` and `make test` are the README's two promises.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST := $(BIN)/pytest
# pytest's exit code passes through, but for 5 ("no tests collected"): make says so loudly and
# exits NO_TESTS_RC (5 by default, a failure; CI sets 0 and reports a stage that ran no test).
NO_TESTS_RC ?= 5
run_pytest = $(PYTEST) $(1) || { rc=$$?; if [ $$rc -eq 5 ]; then \
	echo "!! pytest $(1): no tests collected (exit 5; NO_TESTS_RC=$(NO_TESTS_RC))" >&2; \
	exit $(NO_TESTS_RC); fi; exit $$rc; }

.PHONY: help venv lint unit integration e2e test demo simulate constraints crds bins dev-up dev-down prometheus clean

help:
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/wattscale: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

venv: $(BIN)/wattscale ## create .venv with wattscale and its dev tools

lint: venv ## ruff, mypy (strict) and import-linter layering contracts
	$(BIN)/ruff check operator tests bench hack
	$(BIN)/ruff format --check operator tests bench hack
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: venv ## the fast unit suite
	$(call run_pytest,-m unit -q)

integration: venv ## tests against real local services (Prometheus, feed servers)
	hack/ensure-prometheus.sh
	$(call run_pytest,-m integration -q)

e2e: venv bins ## the slow end-to-end suite on the local multi-region Kubernetes stack
	$(call run_pytest,-m e2e -q)

test: lint unit integration e2e ## everything CI runs, in order: lint, unit, integration, e2e

demo: venv bins prometheus ## the operator live on the local stack, on the example, in accelerated time
	$(BIN)/python hack/demo.py

simulate: venv ## offline: the planner vs baselines and the optimum on the bundled real-price sample
	$(BIN)/wattscale demo

constraints: ## re-resolve pyproject.toml's dependency ranges into constraints.txt (commit the diff deliberately)
	rm -rf .venv-constraints
	$(PY) -m venv .venv-constraints
	.venv-constraints/bin/pip install -q --upgrade pip
	.venv-constraints/bin/pip install -q -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; .venv-constraints/bin/pip freeze --all --exclude-editable; } \
		> constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .venv-constraints

crds: venv ## regenerate crds/ (and the chart's copy) from the pydantic models
	$(BIN)/wattscale crds --output-dir crds
	$(BIN)/wattscale crds --output-dir helm/wattscale/crds

bins: ## build the Kubernetes control plane, etcd, kwok and helm into ~/.cache/wattscale
	hack/k8s-bins.sh

dev-up: venv bins ## hub + three region clusters on loopback with fake GPU nodes
	hack/dev-up.sh

prometheus: ## install Debian's prometheus binary (no daemon is started)
	hack/ensure-prometheus.sh

dev-down: ## stop what dev-up started
	hack/dev-down.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
