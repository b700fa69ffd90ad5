"""Embedding maps and the explorer at a million points (issue 25): the figure's JSON size and build
time, the explorer's widget state and its kernel-side steps, and with --browser the wall times a
person sees in JupyterLab (first render, lasso -> thumbnails, typed query -> star and neighbours).
Prints figures beside the issue's floors; nothing here fails on a missed floor.

    python benchmarks/bench_explorer_scale.py [--n 1000000] [--browser]

The points are synthetic (tests/browser/_million.py): noisy copies of 2,000 ShapeWorld images'
lab-vit-tiny embeddings, placed near those images' PCA positions. --browser runs
tests/browser/test_explorer_scale_in_lab.py (JupyterLab in Debian's chromium) and prints its timings.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FLOORS = {"figure JSON (MB)": 5.0, "first render (s)": 10.0, "lasso -> thumbnails (s)": 2.0,
          "query -> star and neighbours (s)": 1.0}  # the issue's: at most


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def state_bytes(widget) -> tuple[int, int]:
    """(bytes the page receives for a FigureWidget's figure: JSON state + binary buffers, plotly's bundle)."""
    from ipywidgets.widgets.widget import _remove_buffers
    state = widget.get_state()
    bundle = len(state.pop("_plotly_esm").encode())
    rest, _, buffers = _remove_buffers(state)
    return len(json.dumps(rest)) + sum(memoryview(b).nbytes for b in buffers), bundle


def verdict(name: str, value: float) -> str:
    return f"{name}: {value:.2f} (floor {FLOORS[name]:g}: {'met' if value <= FLOORS[name] else 'MISSED'})"


def kernel_side(n: int):
    from figures.maps import scatter_map
    from tests.browser._million import million_arrays
    from widgets.embedding_explorer import EmbeddingExplorer, rows_in_lasso
    (x, coords, points, data, model), t_arrays = timed(million_arrays, n)
    print(f"{n:,} synthetic points ({x.shape[1]}-d embeddings): {t_arrays:.1f} s to make")
    fig, t_fig = timed(scatter_map, coords, points, ["class", "colour"], hover=["class", "colour", "item"])
    text, t_json = timed(fig.to_json)
    print(f"scatter_map, 2 colour columns: built in {t_fig:.2f} s, to_json {t_json:.2f} s; "
          + verdict("figure JSON (MB)", len(text) / 1e6))
    explorer, t_open = timed(EmbeddingExplorer.from_arrays, x, coords, points, data, model)
    figure, bundle = state_bytes(explorer.figure)
    print(f"EmbeddingExplorer.from_arrays: {t_open:.2f} s; widget state {figure / 1e6:.2f} MB "
          f"(+ plotly's page code {bundle / 1e6:.1f} MB, once per page)")
    lo, hi = np.percentile(coords, [30, 60], axis=0)  # (2,) each: a lasso over a slice of the map
    xs, ys = [lo[0], hi[0], hi[0], lo[0]], [lo[1], lo[1], hi[1], hi[1]]
    rows, t_lasso = timed(rows_in_lasso, coords, xs, ys)
    _, t_grid = timed(explorer.select, rows)
    _, t_query = timed(explorer.query, "a red circle")
    _, t_view = timed(explorer.view, (lo[0], hi[0]), (lo[1], hi[1]))
    print(f"kernel side: lasso of {len(rows):,} points {t_lasso * 1000:.0f} ms + grid {t_grid * 1000:.0f} ms; "
          f"query {t_query * 1000:.0f} ms; zoom redraw {t_view * 1000:.0f} ms")


def browser():
    """The browser test's own timings (pytest -s prints them)."""
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                          "tests/browser/test_explorer_scale_in_lab.py"], cwd=ROOT, capture_output=True, text=True)
    found = re.search(r"explorer at [\d,]+ points: (.*)", run.stdout)
    if run.returncode or not found:
        print(f"browser test failed (exit {run.returncode}):\n{run.stdout[-3000:]}")
        return
    print("in JupyterLab (chromium, this machine): " + found.group(0))
    for name, seconds in re.findall(r"([^,]+?) ([\d.]+) s", found.group(1)):
        print("  " + verdict(f"{name.strip()} (s)", float(seconds)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="points (default 1,000,000)")
    ap.add_argument("--browser", action="store_true", help="also run the browser test and print its timings")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LAB_CACHE_DIR"] = str(Path(tmp) / "cache")
        kernel_side(args.n)
    if args.browser:
        browser()


if __name__ == "__main__":
    main()
