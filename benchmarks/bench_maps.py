"""Embedding-map benchmark (CPU): projection of N cached embeddings with UMAP vs PCA, a cache hit,
the explorer's callbacks on N points, and notebook 02 re-run warm vs cold. Prints seconds and ratios.

    python benchmarks/bench_maps.py [--n 20000]

The N embeddings are real: ShapeWorld test images through lab-vit-tiny (128-d), plus N random
512-d unit vectors with 50-cluster structure (the size of a ViT-B/32 embedding) for the projection timing.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def clustered(n: int, d: int = 512, k: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(k, d))[rng.integers(0, k, n)] + 0.5 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def timed(fn, *a, **k):
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


def notebook_seconds(out: Path, cache: Path) -> tuple[float, float]:
    """(wall seconds of `python -m lab report` on notebook 02, seconds inside its cells)."""
    import nbformat
    env = {**os.environ, "LAB_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lab", "report", "--no-progress", "--out", str(out), "--notebooks",
                    str(ROOT / "notebooks" / "02_embedding_maps.ipynb")], check=True, env=env, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    nb = nbformat.read(out / "02_embedding_maps.ipynb", as_version=4)
    cells = [c.metadata.get("papermill", {}).get("duration") or 0 for c in nb.cells if c.cell_type == "code"]
    return wall, sum(cells), cells


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["LAB_CACHE_DIR"] = str(tmp / "cache")
        from lab.studies import maps as em
        x512 = clustered(args.n)
        pca, t_pca = timed(em.project, x512, "pca")
        umap_proj, t_umap = timed(em.project, x512, "umap")
        _, t_hit = timed(em.project, x512, "umap")
        print(f"projection of {args.n:,} x 512 embeddings on this machine:")
        print(f"  PCA {t_pca:.2f} s, UMAP {t_umap:.1f} s (UMAP/PCA = {t_umap / t_pca:.0f}x), "
              f"cache hit {t_hit * 1000:.0f} ms ({t_umap / t_hit:.0f}x faster than fitting)")

        from widgets.embedding_explorer import EmbeddingExplorer
        from plotly.callbacks import LassoSelector, Points
        explorer, t_init = timed(EmbeddingExplorer, n=args.n)
        print(f"explorer on {len(explorer.points):,} ShapeWorld images (cold: encode + UMAP): {t_init:.1f} s")
        trace = explorer.figure.data[0]
        for label, inds in (("lasso of 200 points", range(min(200, len(trace.x)))),
                            (f"lasso of a whole class ({len(trace.x)} points)", range(len(trace.x)))):
            times = [timed(trace._dispatch_on_selection, Points(point_inds=list(inds), trace_index=0),
                           LassoSelector())[1] for _ in range(5)]
            print(f"  selection -> grid update, {label}: median {statistics.median(times) * 1000:.0f} ms")
        clicks = [timed(trace._dispatch_on_click, Points(point_inds=[i], trace_index=0), None)[1] for i in range(5)]
        queries = [timed(explorer.query, q)[1] for q in ("a red circle", "a blue star", "two green hearts")]
        recolor = timed(explorer.recolor, "colour")[1]
        print(f"  click -> neighbours: median {statistics.median(clicks) * 1000:.0f} ms; typed query -> placed + "
              f"nearest: median {statistics.median(queries) * 1000:.0f} ms; recolour: {recolor * 1000:.0f} ms")

        cache = tmp / "nb-cache"
        cold = notebook_seconds(tmp / "cold", cache)
        warm = notebook_seconds(tmp / "warm", cache)
        print("notebook 02, default parameters (wall = python -m lab report; cells = inside the kernel):")
        print(f"  cold: wall {cold[0]:.1f} s, cells {cold[1]:.1f} s; warm: wall {warm[0]:.1f} s, cells {warm[1]:.1f} s")
        print(f"  warm vs cold: wall {cold[0] / warm[0]:.1f}x, cells {cold[1] / warm[1]:.1f}x; "
              f"first cell (imports + model load) warm {warm[2][2]:.1f} s, the rest warm {warm[1] - warm[2][2]:.1f} s "
              f"vs cold {cold[1] - cold[2][2]:.1f} s ({(cold[1] - cold[2][2]) / max(warm[1] - warm[2][2], 1e-9):.1f}x)")


if __name__ == "__main__":
    main()
