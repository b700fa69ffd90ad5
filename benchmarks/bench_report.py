"""Report benchmark: the batch report (`python -m lab report`) on its default parameters, with a
cold embedding cache and then warm, plus the time an empty notebook takes (kernel start, the
floor of any run). Prints seconds and ratios measured in the same run.

    python benchmarks/bench_report.py [--notebooks notebooks/01_prompt_engineering.ipynb]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent


def report_seconds(notebooks: list[str], out: Path, cache: Path) -> float:
    env = {**os.environ, "LAB_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lab", "report", "--no-progress", "--out", str(out), "--notebooks",
                    *notebooks], check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--notebooks", nargs="+", default=[str(p) for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        empty = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell("x: int = 0  # unused")
        params.metadata["tags"] = ["parameters"]
        empty.cells = [params]
        empty.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(empty, tmp / "00_empty.ipynb")
        floor = report_seconds([str(tmp / "00_empty.ipynb")], tmp / "floor", tmp / "cache")
        cold = report_seconds(args.notebooks, tmp / "cold", tmp / "cache")
        warm = report_seconds(args.notebooks, tmp / "warm", tmp / "cache")
        runs = [json.loads((tmp / run / "manifest.json").read_text())["notebooks"] for run in ("cold", "warm")]
    print(f"report of {len(args.notebooks)} notebook(s), default parameters, this machine:")
    print(f"  empty notebook (kernel start + export): {floor:6.1f} s")
    print(f"  cold cache:                             {cold:6.1f} s")
    print(f"  warm cache:                             {warm:6.1f} s   cold/warm = {cold / warm:.2f}x")
    print(f"  above the empty-notebook floor: cold {cold - floor:.1f} s, warm {warm - floor:.1f} s "
          f"-> {(cold - floor) / max(warm - floor, 1e-9):.2f}x")
    print("  per notebook (executing it, as the manifest records): cold / warm")
    for c, w in zip(*runs):
        print(f"    {c['notebook']:<24} {c['seconds']:6.1f} s / {w['seconds']:6.1f} s = "
              f"{c['seconds'] / w['seconds']:.1f}x ({c['status']}, {w['status']})")


if __name__ == "__main__":
    main()
