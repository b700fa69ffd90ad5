# CLIP Lab: `make demo` sets up and runs the main job, `make test` sets up and runs the tests.
# Both create the virtual environment .venv when it is missing (CPU is enough).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m lab models --available
	$(PY) -m lab encode --world test:200 --model lab-vit-tiny --out runs/demo/world-test.npy
	$(PY) -m lab cache info

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/bench_encode.py

clean:
	rm -rf $(VENV) runs
