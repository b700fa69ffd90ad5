"""Maps at a researcher's scale (CPU): a ShapeWorld class folder of --images 64-px JPEGs encoded by
lab-vit-tiny, its embeddings copied with noise to 300k and 1M points, and at each size every stage
of notebook 02's maps timed: the k-NN graph (exact vs approximate, recall@10 on a sample of 1,000
points: the share of its 10 neighbours no farther than the exact 10th, as ANN-benchmarks counts), UMAP,
k-NN accuracy (graph vs exact at the first size), trustworthiness on a sample with its interval,
the map figure (JSON bytes), and notebook 02 itself run by `python -m lab report` on the cached
points (wall time, peak RSS of the run, notebook and HTML sizes). Prints one table.

    python benchmarks/bench_scale.py [--images 100000] [--sizes 100000 300000 1000000] [--work /tmp/scale]
                                     [--notebook-sizes 100000 1000000] [--skip-exact]

Larger copies are the folder's embeddings repeated with Gaussian noise (sigma 0.02 per coordinate,
renormalised), as the issue measured; the notebook at those sizes reads them through the lab's
`embeddings` dataset (a .npy of points and a labels table) rather than a folder of a million files.
The work folder is kept between runs (the folder, the cache); delete it to start cold.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(fn, *a, **k):
    t = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t


def shapeworld_folder(root: Path, n: int) -> Path:
    """<root>/<shape>/<i>.jpg for n ShapeWorld test scenes (reused when complete)."""
    from lab.data.shapeworld import WorldDataset
    done = root / f".complete-{n}"
    if done.exists():
        return root
    data = WorldDataset("test", n=n)
    for i in range(n):
        path = root / data.labels.loc[i, "shape"] / f"{i:06d}.jpg"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            data.source(i).save(path, quality=90)
    done.touch()
    return root


def copies(x: np.ndarray, labels: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n points: x (M, D) repeated with Gaussian noise (sigma 0.02), renormalised -> (n, D), (n,)."""
    rng = np.random.default_rng(seed)
    pick = np.arange(n) % len(x)
    out = x[pick] + rng.normal(scale=0.02, size=(n, x.shape[1])).astype(np.float32) * (pick >= len(x))[:, None]
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32), labels[pick]


def folder_points(work: Path, images: int) -> tuple[np.ndarray, np.ndarray, list[str], list[str], float]:
    """The folder's embeddings by lab-vit-tiny (cached in <work>/cache) -> emb, labels, paths, classes, seconds."""
    import lab
    from lab.data import load_dataset
    data = load_dataset("folder", str(shapeworld_folder(work / "folder", images)), "all")
    emb, seconds = timed(lab.load_model("lab-vit-tiny", device="cpu").encode_images, data, progress=False)
    return emb, data.labels["label"].to_numpy(), data.labels["path"].tolist(), data.classes, seconds


def points_file(work: Path, n: int, images: int) -> Path:
    """<work>/points-<n>.npz: the folder's embeddings copied with noise to n points."""
    from lab.data import save_points
    file = work / f"points-{n}.npz"
    if not file.exists():
        emb, labels, paths, classes, seconds = folder_points(work, images)
        print(f"encoded {len(emb):,} folder images in {seconds:.0f} s ({len(emb) / seconds:.0f} images/s; "
              "0 s when cached)", flush=True)
        x, y = copies(emb, labels, n)
        save_points(file, x, y, [paths[i % len(paths)] for i in range(n)], classes, "lab-vit-tiny")
    return file


def stages(file: Path, exact: bool) -> dict:
    """Every stage of the map on the points in `file`, in this process, on an empty cache (UMAP reuses
    the graph the first stage built, as notebook 02 does) -> figures."""
    from figures.maps import scatter_map
    from lab.data import PointFile
    from lab.studies import maps as em
    from lab.studies.neighbours import RECALL_EPS, exact_neighbours, knn_graph
    data = PointFile(file)
    x, y, out = data.emb, data.labels["label"].to_numpy(), {"points": len(data)}
    graph, out["graph_s"] = timed(knn_graph, x, 14)
    rows = np.sort(np.random.default_rng(1).choice(len(x), 1000, replace=False))  # not the graph's own sample
    _, truth = exact_neighbours(x, 10, "cosine", rows)  # (1000, 10) exact distances
    out["recall@10"] = float((graph.distances[rows, :10] <= truth[:, -1:] + RECALL_EPS).mean())
    out["graph"] = graph.how
    out["knn_acc"], out["knn_s"] = timed(em.knn_accuracy, x, y, 10, graph=graph)
    if exact:
        out["knn_acc_exact"], out["knn_exact_s"] = timed(em.knn_accuracy, x, y, 10, metric="cosine", cache=False)
    proj, out["umap_s"] = timed(em.project, x, "umap", seed=0, reproducible=False, fit_sample=200_000)
    out["umap"] = "fit on 200,000, rest placed" if "fit_sample" in proj.params else "fit on all"
    out["map_knn_acc"], out["map_knn_s"] = timed(em.knn_accuracy, proj.coords, y, 10, cache=False)
    trust, out["trust_s"] = timed(em.trustworthiness_interval, x, proj.coords, 10, 2000, cache=False)
    out["trust"] = f"{trust['value']:.3f} [{trust['low']:.3f}, {trust['high']:.3f}]"
    points = data.labels.assign(**{"class": [data.classes[i] for i in y]})
    fig, out["figure_s"] = timed(scatter_map, proj.coords, points, ["class"], hover=["class", "path"])
    out["figure_mb"] = len(fig.to_json()) / 2 ** 20
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    return out


def notebook(file: Path, work: Path) -> dict:
    """Notebook 02 by `python -m lab report` on the points in `file`, cold (a fresh cache)."""
    tag = file.stem
    out, cache = work / f"report-{tag}", work / f"cache-{tag}"
    for folder in (out, cache):
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    params = {"dataset": "points", "data_root": str(file), "n_samples": "0", "reproducible": "False",
              "device": "cpu"}
    cmd = [sys.executable, "-m", "lab", "report", "--no-progress", "--out", str(out), "--notebooks",
           str(ROOT / "notebooks" / "02_embedding_maps.ipynb")] + [a for k, v in params.items() for a in ("-p", k, v)]
    wall = timed(subprocess.run, cmd, check=True, cwd=ROOT, env={**os.environ, "LAB_CACHE_DIR": str(cache)},
                 stdout=subprocess.DEVNULL)[1]
    html = next(out.rglob("*.html"), None)
    return {"notebook_s": wall, "notebook_mb": (out / "02_embedding_maps.ipynb").stat().st_size / 2 ** 20,
            "html_mb": html.stat().st_size / 2 ** 20 if html else float("nan"),
            "notebook_peak_rss_gb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2 ** 20}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100_000, help="JPEGs in the ShapeWorld folder")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--notebook-sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    ap.add_argument("--work", default="/tmp/lab-scale", help="kept between runs: the folder, the caches")
    ap.add_argument("--skip-exact", action="store_true", help="no exact k-NN accuracy at the first size")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a size's stages, in a process of its own
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("LAB_CACHE_DIR", str(work / "cache"))
    import lab  # noqa: F401  first: the lab's thread policy
    if args.one:
        file = points_file(work, args.one, args.images)
        os.environ["LAB_CACHE_DIR"] = str(work / "cache-stages")  # empty: every stage computes
        subprocess.run(["rm", "-rf", os.environ["LAB_CACHE_DIR"]], check=True)
        print(json.dumps(stages(file, exact=not args.skip_exact)))
        return 0
    rows = []
    for k, n in enumerate(args.sizes):
        points_file(work, n, args.images)
        cmd = [sys.executable, __file__, "--one", str(n), "--images", str(args.images), "--work", str(work)]
        done = subprocess.run(cmd + (["--skip-exact"] if k or args.skip_exact else []), check=True,
                              capture_output=True, text=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        if n in args.notebook_sizes:
            row.update(notebook(work / f"points-{n}.npz", work))
        rows.append(row)
        print(json.dumps(row), flush=True)
    table = pd.DataFrame(rows).set_index("points").T
    print(table.to_string(float_format=lambda v: f"{v:.3f}" if abs(v) < 10 else f"{v:.0f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
