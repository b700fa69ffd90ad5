# CLIP Lab: `make demo` sets up and runs the main job, `make test` sets up and runs the tests.
# Both create the virtual environment .venv when it is missing (CPU is enough); `make lab` opens
# JupyterLab on notebooks/ with the project's kernel ("CLIP Lab (Python 3)").
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH := torch==2.14.1 torchvision==0.29.1
KERNEL := clip-lab
REPORT ?= runs/report

.PHONY: setup demo test lab chromium hub-proxy bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[dev,dist]"
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "CLIP Lab (Python 3)"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m lab report --out $(REPORT)

test: setup chromium hub-proxy
	$(PY) -m pytest -q

lab: setup
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# The one system package: a headless browser for the browser tests (tests/browser) and PNG/SVG figures.
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else echo "chromium missing: run 'sudo apt-get install -y chromium' (the browser tests fail in CI without it)"; fi; }
	@command -v unzip >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get update -qq && apt-get install -y -qq unzip; \
	  else echo "unzip missing: run 'sudo apt-get install -y unzip' (the workshop setup doc's example needs it)"; fi; }

# The hub rehearsal's proxy (tests/workshop/test_hub_rehearsal.py, benchmarks/bench_hub.py): configurable-http-proxy
# from npm, with Debian's Node.js and npm where they are missing. Version 4: 5.x asks for Node.js >= 22, Debian 12 has 18.
hub-proxy:
	@command -v configurable-http-proxy >/dev/null || { \
	  if ! command -v npm >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq nodejs npm; fi; \
	  if command -v npm >/dev/null && { [ "$$(id -u)" = 0 ] || [ -w "$$(npm prefix -g)/lib" ]; }; then \
	    npm install -g --no-audit --no-fund configurable-http-proxy@4; \
	  else echo "configurable-http-proxy missing: install Node.js and npm, then 'npm install -g configurable-http-proxy@4'" \
	    "(the hub rehearsal fails in CI without it)"; fi; }

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
