"""Compare two report folders (`python -m lab report --out A`, then `--out B`): every notebook's
results in manifest.json, every table a notebook displayed (its HTML DataFrames) and every CSV it
wrote. For checking that a refactor changed no number.

    python benchmarks/compare_reports.py runs/before runs/after      # exit 0 when all agree
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import nbformat


def _close(a, b, tol: float) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol * max(1.0, abs(a), abs(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    return a == b


def tables(executed: Path) -> list[str]:
    """The HTML tables a notebook displayed, in order, whitespace-normalized."""
    nb = nbformat.read(executed, as_version=4)
    found = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            html = output.get("data", {}).get("text/html", "")
            if "<table" in html and "plotly" not in html:
                found.append(re.sub(r"\s+", " ", html).strip())
    return found


def compare(before: Path, after: Path, tol: float) -> list[str]:
    problems = []
    old = {e["notebook"]: e for e in json.loads((before / "manifest.json").read_text())["notebooks"]}
    new = {e["notebook"]: e for e in json.loads((after / "manifest.json").read_text())["notebooks"]}
    for name in sorted(set(old) | set(new)):
        if name not in old or name not in new:
            problems.append(f"{name}: only in {'after' if name in new else 'before'}")
            continue
        a, b = (old[name].get("run") or {}).get("results") or {}, (new[name].get("run") or {}).get("results") or {}
        for key in sorted(set(a) | set(b)):
            if not _close(a.get(key), b.get(key), tol):
                problems.append(f"{name}: result {key!r}: {a.get(key)} -> {b.get(key)}")
        ta, tb = tables(before / old[name]["executed"]), tables(after / new[name]["executed"])
        if len(ta) != len(tb):
            problems.append(f"{name}: {len(ta)} tables -> {len(tb)}")
        problems += [f"{name}: table {k + 1} differs" for k, (x, y) in enumerate(zip(ta, tb)) if x != y]
        for csv in sorted((before / name).glob("*.csv")):
            other = after / name / csv.name
            if not other.exists() or other.read_text() != csv.read_text():
                problems.append(f"{name}: {csv.name} differs or is missing")
        print(f"{name}: {len(a)} results, {len(ta)} tables, {len(list((before / name).glob('*.csv')))} CSV files compared")
    return problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--tol", type=float, default=0.0, help="relative tolerance for float results (default: exact)")
    args = p.parse_args(argv)
    problems = compare(args.before, args.after, args.tol)
    print("\n".join(problems) if problems else "identical: every result, table and CSV file")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
