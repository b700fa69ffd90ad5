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
	$(PY) -m pip install -q -e ".[dev,dist]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m lab report --out runs/report

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/bench_encode.py
	$(PY) benchmarks/bench_report.py
	$(PY) benchmarks/bench_maps.py
	$(PY) benchmarks/bench_attribution.py
	$(PY) benchmarks/bench_dist.py
	$(PY) benchmarks/bench_workshop.py
	$(PY) benchmarks/bench_contention.py

clean:
	rm -rf $(VENV) runs
