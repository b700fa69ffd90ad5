"""Embedding maps: project cached embeddings to 2-D / 3-D (UMAP, or PCA as the fast baseline),
place new points into an existing map, and measure what the picture shows.

    proj = project(image_emb, method="umap", n_neighbors=15, min_dist=0.1)   # cached on disk
    proj.coords                          # (N, 2)
    proj.transform(text_emb)             # new points in the same map, no refit of the map
    knn_accuracy(image_emb, labels), knn_accuracy(proj.coords, labels)
    trustworthiness(image_emb, proj.coords), modality_gap(image_emb, text_emb)
    nearest(image_emb, query_emb, k=8)   # (Q, k) indices and cosine similarities

Projections and the measures are cached under <cache dir>/projections, keyed by a digest of
their input arrays and the parameters, so re-running with the same inputs costs a file read and
a colour change never recomputes.

At scale: above UMAP_OWN_KNN_UP_TO points UMAP is handed the lab's k-NN graph (lab.studies.neighbours:
exact up to its EXACT_UP_TO, approximate above, with its recall), which k-NN accuracy reuses, and
starts from PCA instead of the spectral layout (whose eigensolver takes minutes at 100,000 points).
`reproducible=True` (the default) seeds UMAP: the same map every run, on one thread;
`reproducible=False` lets UMAP run on every CPU the lab's thread policy gives it (about 2x faster
on 2 cores) with a map that differs from run to run in its details. `fit_sample=S` fits UMAP on S
seeded points and places the others at the weighted mean of their graph neighbours' map positions.
Trustworthiness is exact on a seeded sample of query points and reports that sample's 95% interval.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from .. import threads
from ..core import memo
from ..core.memo import array_digest as embeddings_digest
from .neighbours import EXACT_UP_TO, KnnGraph, knn_graph, knn_vote

__all__ = ["METHODS", "UMAP_OWN_KNN_UP_TO", "Projection", "project", "fit_joint", "place_by_neighbours", "knn_accuracy",
           "trustworthiness",
           "trustworthiness_interval", "modality_gap", "nearest", "point_table", "cluster_exemplars", "select"]

METHODS = ("umap", "pca")
UMAP_OWN_KNN_UP_TO = 4096  # umap-learn computes exact neighbours itself up to here (the default maps)


@dataclass
class Projection:
    """A fitted map: `coords` (N, k) of the embeddings it was fitted on; `transform` places new ones."""
    coords: np.ndarray
    method: str
    params: dict
    key: str
    seconds: float
    cached: bool
    fit_data: np.ndarray = field(repr=False)
    pca: dict | None = field(default=None, repr=False)  # mean (D,), components (k, D)
    _reducer: object = field(default=None, repr=False)

    folder: Path | None = field(default=None, repr=False)

    def transform(self, emb: np.ndarray) -> np.ndarray:
        """Coordinates (M, k) of new embeddings (M, D) in this map, without refitting the map.
        Results are cached like the map; a UMAP map read from the cache refits its reducer once
        (same seed, same coordinates) before its first uncached transform."""
        emb = np.asarray(emb, dtype=np.float32)
        if self.method == "pca":
            return (emb - self.pca["mean"]) @ self.pca["components"].T
        if "knn" in self.params:  # fitted on the lab's graph: umap-learn keeps no index to transform with
            return self.place(emb)
        file = self.folder / f"{self.key}-t{embeddings_digest(emb)[:24]}.npy" if self.folder else None
        if file is not None and file.exists():
            return np.load(file)
        with threads.small_work():  # UMAP's spectral start and nearest neighbours: many small BLAS calls
            if self._reducer is None:
                self._reducer = _umap(self.params)
                self._reducer.fit(self.fit_data)
            out = np.asarray(self._reducer.transform(emb), dtype=np.float32)
        if file is not None:
            memo.atomic_save(file, out)
        return out

    def place(self, emb: np.ndarray, k: int = 15) -> np.ndarray:
        """Fast approximate placement (M, k) for interactive use: each new point goes to the
        weighted mean map position of its k nearest fitted points (cosine), weights decaying with
        distance as UMAP's memberships do; this is where UMAP's transform starts before refining.
        Exact (PCA) or `transform` (UMAP) when the fitted reducer is already in memory."""
        emb = np.asarray(emb, dtype=np.float32)
        if self.method == "pca" or (self._reducer is not None and "knn" not in self.params):
            return self.transform(emb)
        return place_by_neighbours(self.fit_data, self.coords, emb, k)


def _neighbour_weights(distances: np.ndarray) -> np.ndarray:
    """Weights (M, k) of each row's k neighbours at `distances` (M, k), nearest first: 1 for the
    nearest, decaying with the distance beyond it as UMAP's memberships do."""
    d = distances - distances[:, :1]
    return np.exp(-d / np.maximum(d.mean(1, keepdims=True), 1e-6))


def place_by_neighbours(fit_data: np.ndarray, coords: np.ndarray, emb: np.ndarray, k: int = 15) -> np.ndarray:
    """Map positions (M, 2|3) of new embeddings emb (M, D) in a map of fit_data (N, D) at coords
    (N, 2|3): each at the weighted mean position of its k nearest fitted points (cosine)."""
    idx, sims = nearest(fit_data, emb, k)  # (M, k)
    weights = _neighbour_weights(1 - sims)
    return (weights[..., None] * coords[idx]).sum(1) / weights.sum(1, keepdims=True)


def _folder(cache: bool | str | os.PathLike) -> Path | None:
    return memo.folder(cache, "projections")


def _memoized(name: str, arrays: list, params: dict, cache, compute):
    """compute() -> JSON-able result, kept in the cache folder under a digest of the input arrays
    and parameters, so a re-run with unchanged inputs reads it back. scikit-learn's many small
    calls run on one thread (lab.threads.small_work)."""
    def run():
        with threads.small_work():
            return compute()
    return memo.memoized(name, [list(map(np.asarray, arrays)), params], run, cache, folder_name="projections",
                         code=[__name__], packages=["numpy", "scikit-learn"])


def _umap(params: dict, graph: KnnGraph | None = None):
    import umap
    seeded = params.get("reproducible", True)
    return umap.UMAP(n_components=params["n_components"], n_neighbors=params["n_neighbors"],
                     min_dist=params["min_dist"], metric=params["metric"],
                     random_state=params["seed"] if seeded else None,
                     n_jobs=1 if seeded else threads.fair_count(threads.available_cpus()),
                     transform_seed=params["seed"], init=params.get("init", "spectral"),
                     precomputed_knn=graph.with_self() + (None,) if graph is not None else (None, None, None))


def _fit_umap(emb: np.ndarray, params: dict):
    """-> (UMAP coordinates (N, k) of emb, the fitted reducer); on the lab's k-NN graph when params
    say so (params["knn"]), else umap-learn's own neighbours."""
    import warnings
    if "knn" not in params:
        reducer = _umap(params)
        with threads.small_work():  # its spectral start and nearest neighbours: many small BLAS calls
            return reducer.fit_transform(emb), reducer
    graph = knn_graph(emb, params["n_neighbors"] - 1, params["metric"], seed=params["seed"])
    reducer = _umap(params, graph)
    with warnings.catch_warnings():  # "no NNDescent index, transform unavailable": Projection places instead
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        return reducer.fit_transform(emb), reducer


def _place_by_graph(coords: np.ndarray, fitted: np.ndarray, graph: KnnGraph) -> np.ndarray:
    """Map positions (N, k) for every row: `fitted` rows keep coords (S, k); each other row goes to
    the mean of its graph neighbours already placed, weighted as in Projection.place, in rounds
    until every row is placed (a row with no placed neighbour waits for a round)."""
    n = len(graph.indices)
    out = np.full((n, coords.shape[1]), np.nan, dtype=np.float32)
    out[fitted] = coords
    placed = np.zeros(n, dtype=bool)
    placed[fitted] = True
    weights = _neighbour_weights(graph.distances)  # (N, k)
    while not placed.all():
        todo = np.flatnonzero(~placed)
        w = weights[todo] * placed[graph.indices[todo]]  # (T, k) only placed neighbours count
        ok = w.sum(1) > 0
        if not ok.any():  # a component with no fitted point: its rows stay at the origin of the map
            out[todo] = 0
            break
        rows, w = todo[ok], w[ok]
        out[rows] = (w[..., None] * np.nan_to_num(out[graph.indices[rows]])).sum(1) / w.sum(1, keepdims=True)
        placed[rows] = True
    return out


def fit_joint(joint_map: str, n_images: int) -> bool:
    """Whether an image + text map is a second fit of both ("fit") or the texts placed in the image
    map ("place"); "auto" fits up to EXACT_UP_TO images, where a second fit is cheap."""
    if joint_map not in ("auto", "fit", "place"):
        raise ValueError(f"joint_map must be 'auto', 'fit' or 'place'; got {joint_map!r}")
    return joint_map == "fit" or (joint_map == "auto" and n_images <= EXACT_UP_TO)


def _pca(x: np.ndarray, k: int) -> dict:
    mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)  # rows of vt: principal axes
    return {"mean": mean, "components": vt[:k]}


def project(emb: np.ndarray, method: str = "umap", n_components: int = 2, n_neighbors: int = 15,
            min_dist: float = 0.1, metric: str = "cosine", seed: int = 0, cache: bool | str | os.PathLike = True,
            reproducible: bool = True, fit_sample: int = 0) -> Projection:
    """Fit a 2-D/3-D map of `emb` (N, D) (NaN rows, e.g. failed images, must be dropped first).
    cache: True for the lab cache folder, a folder, or False. UMAP only: reproducible=False fits on
    every CPU (a map that varies between runs); fit_sample=S < N fits on S seeded points and places
    the rest by their k-NN graph neighbours (module docstring)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2 or not np.isfinite(emb).all():
        raise ValueError("project() needs an (N, D) array of finite embeddings; drop failed (NaN) rows first")
    if n_components not in (2, 3):
        raise ValueError(f"n_components must be 2 or 3; got {n_components}")
    params = {"method": method, "n_components": n_components, "seed": seed}
    if method == "umap":
        params.update(n_neighbors=min(n_neighbors, len(emb) - 1), min_dist=min_dist, metric=metric,
                      umap_version=metadata.version("umap-learn"))  # without importing umap (slow)
        if not reproducible:
            params["reproducible"] = False
        if 0 < fit_sample < len(emb):
            params["fit_sample"] = int(fit_sample)
        if len(emb) > UMAP_OWN_KNN_UP_TO or "fit_sample" in params:
            # UMAP on lab.studies.neighbours' graph, starting from PCA: the spectral start's eigensolver
            # took minutes on a 100,000-point graph (and longer on graphs in many pieces)
            params.update(knn="lab", init="pca")
    key = hashlib.sha256((embeddings_digest(emb) + json.dumps(params, sort_keys=True)).encode()).hexdigest()[:32]
    folder = _folder(cache)
    file = folder / f"{key}.npz" if folder else None
    if file is not None and file.exists():
        start = time.perf_counter()
        with np.load(file) as z:
            coords = z["coords"]
            pca = {"mean": z["mean"], "components": z["components"]} if method == "pca" else None
        return Projection(coords, method, params, key, time.perf_counter() - start, True, emb, pca, folder=folder)
    start = time.perf_counter()
    reducer, pca = None, None
    if method == "pca":
        pca = _pca(emb, n_components)
        coords = (emb - pca["mean"]) @ pca["components"].T
    elif "fit_sample" in params:
        fitted = np.sort(np.random.default_rng(seed).choice(len(emb), params["fit_sample"], replace=False))
        graph = knn_graph(emb, params["n_neighbors"] - 1, metric, seed=seed)
        coords = _place_by_graph(np.asarray(_fit_umap(emb[fitted], params)[0], dtype=np.float32), fitted, graph)
    else:
        coords, reducer = _fit_umap(emb, params)
    coords = np.asarray(coords, dtype=np.float32)
    seconds = time.perf_counter() - start
    if file is not None:
        memo.atomic_save(file, coords=coords, **(pca or {}))
    return Projection(coords, method, params, key, seconds, False, emb, pca, reducer, folder)


# -- what the map shows ---------------------------------------------------------------------------

def _neighbours(x: np.ndarray, k: int, metric: str, rows: np.ndarray | None = None) -> np.ndarray:
    """Indices (R, k) of the k nearest other rows of x for `rows` (default all). Exact (scikit-learn:
    a k-d tree for a 2-D map)."""
    from sklearn.neighbors import NearestNeighbors
    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    nn = NearestNeighbors(n_neighbors=k + 1, metric=metric).fit(x)
    idx = nn.kneighbors(x[rows], return_distance=False)  # (R, k+1), usually the row itself first
    own = idx == rows[:, None]
    keep = ~own
    keep[~own.any(1), -1] = False  # the row crowded out by duplicates: drop the farthest instead
    return idx[keep].reshape(len(rows), k)


def knn_accuracy(x: np.ndarray, labels, k: int = 10, metric: str = "euclidean", cache=True,
                 graph: KnnGraph | None = None) -> float:
    """Leave-one-out k-NN label accuracy (majority vote, ties to the smaller label as in
    scikit-learn): how well neighbourhoods in this space (full embedding or map) keep classes together.
    graph: a k-NN graph of x (lab.studies.neighbours, at least k neighbours) to vote with instead of
    exact neighbours: the way at scale, where `graph.how` says how approximate the number is."""
    labels = np.asarray(labels)
    if graph is not None:
        if graph.k < k or len(graph.indices) != len(labels):
            raise ValueError(f"the graph has {graph.k} neighbours of {len(graph.indices)} rows; knn_accuracy "
                             f"needs at least k={k} neighbours of all {len(labels)} rows")
        return float((knn_vote(graph.indices[:, :k], labels) == labels).mean())

    def compute():
        return float((knn_vote(_neighbours(np.asarray(x), k, metric), labels) == labels).mean())
    return _memoized("knn", [x, labels], {"k": k, "metric": metric}, cache, compute)


def trustworthiness(high: np.ndarray, low: np.ndarray, k: int = 10, sample: int | None = 2000, seed: int = 0,
                    cache=True) -> float:
    """Trustworthiness of a map (Venna & Kaski; 1 = every map neighbour is a true neighbour),
    euclidean in both spaces (for unit-norm embeddings the same ranks as cosine). With `sample`,
    averaged over that many seeded random query points (exact when sample is None or >= N); see
    trustworthiness_interval for the sample's 95% interval."""
    return trustworthiness_interval(high, low, k, sample, seed, cache)["value"]


def trustworthiness_interval(high: np.ndarray, low: np.ndarray, k: int = 10, sample: int | None = 2000,
                             seed: int = 0, cache=True) -> dict:
    """-> {value, low, high, queries}: trustworthiness over `queries` seeded query points and its 95%
    interval (normal approximation over the queries' own values; value == low == high when exact)."""
    return _memoized("trustworthiness", [high, low], {"k": k, "sample": sample, "seed": seed}, cache,
                     lambda: _trustworthiness(high, low, k, sample, seed))


def _trustworthiness(high, low, k, sample, seed) -> dict:
    high, low = np.asarray(high, dtype=np.float32), np.asarray(low, dtype=np.float32)
    n, sq = len(high), (high.astype(np.float64) ** 2).sum(1)
    if not 0 < k < n / 2:
        raise ValueError(f"trustworthiness needs 0 < k < N/2 (N={n}); got k={k}")
    exact = sample is None or sample >= n
    queries = np.arange(n) if exact else np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))
    low_nbrs = _neighbours(low, k, "euclidean", queries)  # (Q, k) the map's neighbours of each query
    scale = 2.0 / (k * (2 * n - 3 * k - 1))
    per_query = np.empty(len(queries))
    for s in range(0, len(queries), 16):  # (16, N) distances at a time: 128 MB at a million points
        q = queries[s:s + 16]
        d = sq[q, None] + sq[None, :] - 2 * (high[q] @ high.T).astype(np.float64)  # (q, N) squared distances
        d[np.arange(len(q)), q] = np.inf  # a point is not its own neighbour
        for j, row in enumerate(d):
            nbrs = low_nbrs[s + j]  # (k,)
            dj = row[nbrs]
            # rank in the high-dimensional order (1 = nearest; ties to the lower row, as a stable sort)
            ranks = (row[None, :] < dj[:, None]).sum(1) + ((row[None, :] == dj[:, None])
                                                           & (np.arange(n)[None, :] < nbrs[:, None])).sum(1) + 1
            per_query[s + j] = 1 - scale * np.clip(ranks - k, 0, None).sum()
    value = float(per_query.mean())
    half = 0.0 if exact else float(1.96 * per_query.std(ddof=1) / np.sqrt(len(queries)))
    return {"value": value, "low": value - half, "high": value + half, "queries": int(len(queries))}


def modality_gap(image_emb: np.ndarray, text_emb: np.ndarray, seed: int = 0, cache=True) -> dict:
    """The gap between image and text embeddings: distance and cosine between the two centroids,
    and how linearly separable the modalities are (5-fold logistic-regression accuracy on equal
    numbers of each; 0.5 = inseparable)."""
    return _memoized("modality_gap", [image_emb, text_emb], {"seed": seed}, cache,
                     lambda: _modality_gap(image_emb, text_emb, seed))


def _modality_gap(image_emb, text_emb, seed) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    ci, ct = image_emb.mean(0), text_emb.mean(0)
    m = min(len(image_emb), len(text_emb))
    rng = np.random.default_rng(seed)
    x = np.concatenate([image_emb[rng.choice(len(image_emb), m, replace=False)],
                        text_emb[rng.choice(len(text_emb), m, replace=False)]])
    y = np.r_[np.zeros(m), np.ones(m)]
    folds = min(5, m)
    sep = float(cross_val_score(LogisticRegression(max_iter=1000), x, y, cv=folds).mean()) if folds >= 2 else np.nan
    return {"centroid_distance": float(np.linalg.norm(ci - ct)),
            "centroid_cosine": float(ci @ ct / (np.linalg.norm(ci) * np.linalg.norm(ct))),
            "linear_separability": sep}


def point_table(dataset, emb: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """The map's points: one row per item that encoded (failed items are NaN rows of `emb`) with the
    dataset's labels, its class name ('?' for label -1) and `item`, its index in the dataset ->
    (points, the embeddings of those rows)."""
    ok = np.isfinite(emb).all(1)
    points = dataset.labels[ok].reset_index(drop=True)
    points["class"] = [dataset.classes[i] if i >= 0 else "?" for i in points["label"]]
    points["item"] = np.flatnonzero(ok)
    return points, emb[ok]


def nearest(emb: np.ndarray, queries: np.ndarray, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of `emb` (N, D) most cosine-similar to each query (Q, D) -> (indices, sims), (Q, k)
    each, best first, ties to the lower row; NaN rows never match. Exact: a partial sort, so a query
    against a million rows takes a fraction of a second."""
    emb, queries = np.asarray(emb), np.asarray(queries)
    k = min(k, len(emb))
    idx, best = np.empty((len(queries), k), dtype=np.int64), np.empty((len(queries), k), dtype=np.float32)
    for s in range(0, len(queries), 64):  # (64, N) similarities at a time
        sims = np.nan_to_num(queries[s:s + 64] @ emb.T, nan=-np.inf)  # (q, N)
        for j, row in enumerate(sims):
            cut = np.partition(row, len(row) - k)[len(row) - k] if k < len(row) else -np.inf  # the k-th best
            candidates = np.flatnonzero(row >= cut)  # ascending rows: ties keep the lower row first
            idx[s + j] = candidates[np.argsort(-row[candidates], kind="stable")[:k]]
            best[s + j] = row[idx[s + j]]
    return idx, best


def cluster_exemplars(coords: np.ndarray, n_clusters: int = 8, per_cluster: int = 8, seed: int = 0, cache=True
                      ) -> tuple[np.ndarray, pd.DataFrame]:
    """k-means on the map -> (cluster of every point (N,), exemplars: cluster, item, rank — the
    points nearest each cluster centre, so a static report can show what each island holds)."""
    def compute():
        from sklearn.cluster import KMeans
        km = KMeans(n_clusters=min(n_clusters, len(coords)), n_init=4, random_state=seed).fit(coords)
        rows = []
        for c, centre in enumerate(km.cluster_centers_):
            members = np.flatnonzero(km.labels_ == c)
            order = members[np.argsort(((coords[members] - centre) ** 2).sum(1))][:per_cluster]
            rows += [(c, int(i), r) for r, i in enumerate(order)]
        return {"labels": km.labels_.tolist(), "exemplars": rows}
    found = _memoized("clusters", [coords], {"n_clusters": n_clusters, "per_cluster": per_cluster, "seed": seed},
                      cache, compute)
    return np.array(found["labels"]), pd.DataFrame(found["exemplars"], columns=["cluster", "item", "rank"])


def select(frame: pd.DataFrame, indices) -> pd.DataFrame:
    """The rows of a map's point table picked by a lasso/box selection (positions, in order)."""
    idx = np.asarray(list(indices), dtype=int)
    return frame.iloc[idx[(idx >= 0) & (idx < len(frame))]]
