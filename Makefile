# Quick start: `make train` (set up + train on the built-in dataset), `make test` (set up + tests).
# Set-up is idempotent: the venv is rebuilt only when pyproject.toml changes.
# The test targets also run with an interpreter that has the packages already (no venv made or used):
# `make test-gpu PY=python3`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
VENV_SETUP := $(if $(filter $(VENV)/bin/python,$(PY)),setup,)
ARGS ?=
T ?=

.PHONY: setup train demo export test test-slow test-gpu gpu-check lint bench bench-gpu bench-loader flops table report clean-logs

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: anything else pulls a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,report]"
	touch $(STAMP)

train: setup
	$(PY) -m src.train $(ARGS)

# make demo: classify a built-in validation video (VIDEO=file or frame folder to choose) with the newest
# `make train` checkpoint (CKPT=path to choose); prints the top-5 and writes a PNG of the frames AFNet selected
demo: setup
	$(PY) -m src.demo $(or $(VIDEO),builtin) ckpt_path=$(or $(CKPT),newest) $(ARGS)

# make export F=torchscript|pt2|onnx [CKPT=path]: export the newest `make train` checkpoint (onnx: pip install -e .[onnx])
export: setup
	$(PY) -m src.export ckpt_path=$(or $(CKPT),newest) format=$(or $(F),torchscript) $(ARGS)

test: $(VENV_SETUP)
	$(PY) -m pytest -q $(ARGS)

test-slow: $(VENV_SETUP)
	$(PY) -m pytest -q -m slow $(ARGS)

# the tests marked gpu, slow ones included (the default run collects them and skips them without CUDA)
test-gpu: $(VENV_SETUP)
	$(PY) -m pytest -q -m gpu $(ARGS)

# on a GPU machine without a venv: make gpu-check PY=python3 OUT=DIR [STEPS=env,fast,slow,bench]
# (installs the wheels of .whl/, runs the gpu tests and the GPU benchmark, logs and gpu-check.json in DIR)
gpu-check: $(VENV_SETUP)
	$(PY) -m src.tools.gpu_check --out $(or $(OUT),gpu-check) $(if $(STEPS),--steps $(STEPS)) $(ARGS)

lint: setup
	$(PY) -m ruff check src tests

flops: setup
	$(PY) -m src.flops $(ARGS)

# CPU latency (Table S5 protocol, 2 threads) and its spread over the kept runs; GPU: make bench-gpu ARGS=--quick
bench: setup
	$(PY) -m src.bench --out experiments/S5/bench.json --runs-dir experiments/S5/runs $(ARGS)
	$(PY) -m src.bench.runs --out experiments/S5/runs.md

bench-gpu: $(VENV_SETUP)
	$(PY) -m src.bench --device cuda --out experiments/S5/bench-gpu.json $(ARGS)

bench-loader: setup
	$(PY) -m src.bench.loader $(ARGS)

# make table T=S1: launch the sweep of paper table T (a re-launch skips finished jobs); make report T=S1
table: setup
	$(PY) -m src.train --multirun sweep=$(T) $(ARGS)

report: setup
	$(PY) -m src.report $(T) $(if $(filter demo,$(T)),--tables conf/tables/demo-tables.yaml) $(ARGS)

clean-logs:
	rm -rf logs outputs
