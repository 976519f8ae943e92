# QuakeLake: every target builds what it needs from nothing.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
SHARED ?= ../shared
# Real data and weights for the demo: the shared folder when present, else what you pass.
DEMO_DATA ?= $(or $(QUAKELAKE_DEMO_DATA),$(wildcard $(SHARED)/data/phasenet_saltonsea_20201001/mseed))
WEIGHTS   ?= $(or $(QUAKELAKE_WEIGHTS),$(wildcard $(SHARED)/seisbench_cache))
LAKE      ?= lake
DEMO_STATIONS ?= $(if $(findstring phasenet_saltonsea,$(DEMO_DATA)),$(wildcard $(DEMO_DATA)/../stations.xml))
DEMO_REFERENCE ?= $(if $(findstring phasenet_saltonsea,$(DEMO_DATA)),$(wildcard $(DEMO_DATA)/../DERIVED_*.csv))

.PHONY: venv demo test test-fast lint typecheck bench clean

venv: $(STAMP)

# torch is installed first and pinned: an unpinned resolution would pull multi-GB CUDA wheels.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip wheel
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	SEISBENCH_CACHE_ROOT=$${SEISBENCH_CACHE_ROOT:-$(CURDIR)/.cache/seisbench} QUAKELAKE_WEIGHTS=$(WEIGHTS) \
	  $(VENV)/bin/quakelake demo --lake $(LAKE) $(if $(DEMO_DATA),--data $(DEMO_DATA)) \
	  $(if $(DEMO_STATIONS),-F $(DEMO_STATIONS)) $(if $(DEMO_REFERENCE),--reference-file $(DEMO_REFERENCE))

# Everything: slow and integration tests too (Prefect servers, PostgreSQL, SLURM, a browser).
test: $(STAMP)
	$(PY) -m pytest -q

# While editing: no slow or integration test, and no Prefect server (a test that would start
# Prefect's temporary one fails instead); needs only the committed fixtures in tests/data (the
# tests that need ../shared run when it is there, else skip).
test-fast: $(STAMP)
	PREFECT_SERVER_ALLOW_EPHEMERAL_MODE=false \
	  $(PY) -m pytest -q -m "not slow and not integration and not network"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

# mypy on the science layer and the parameter models (files and per-library settings: pyproject.toml)
typecheck: $(STAMP)
	$(PY) -m mypy

bench: $(STAMP)
	$(PY) benchmarks/picking.py

clean:
	rm -rf $(VENV) $(LAKE) .cache .pytest_cache
