"""k-nearest-neighbour graphs of embeddings, built once and shared by everything a map measures:
UMAP (as its precomputed graph), k-NN label accuracy and the explorer's neighbours.

    g = knn_graph(image_emb, k=15, metric="cosine")    # exact up to EXACT_UP_TO rows, then HNSW (usearch)
    g.indices, g.distances                              # (N, k) each, the row itself left out, nearest first
    g.how                                               # "exact" or "approximate (recall@15 0.987 on 1,000 rows)"
    knn_vote(g.indices[:, :10], labels)                 # leave-one-out majority vote -> (N,) predictions

Exact: blocked brute force (cosine or euclidean), O(N²·D), cheap below EXACT_UP_TO. Approximate:
an HNSW index (usearch: compiled, so no numba compile per process, which costs pynndescent 30-40 s
on this machine; multi-threaded at the lab's fair thread count), searched for every row; its
recall@k is measured against exact neighbours on a seeded sample of rows and carried with the graph,
so every number computed from it can say how approximate it is. The HNSW index is built on several
threads, so two builds can differ in a few neighbours; graphs are cached on disk like the projections
(a digest of the embeddings and the parameters), so a re-run reads the same graph back.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from .. import threads
from ..core import memo

__all__ = ["EXACT_UP_TO", "RECALL_SAMPLE", "KnnGraph", "knn_graph", "exact_neighbours", "knn_vote"]

EXACT_UP_TO = 20_000  # rows: exact neighbours up to here (a few seconds), approximate above
RECALL_SAMPLE = 1_000  # rows whose exact neighbours measure an approximate graph's recall
RECALL_EPS = 1e-4  # a neighbour this much farther than the exact k-th still counts (float rounding)
CONNECTIVITY, EXPANSION = 16, 96  # HNSW: links per node, candidates kept while building and searching
BLOCK_VALUES = 2 ** 27  # distances held at once by exact_neighbours (float32: 512 MB)


@dataclass
class KnnGraph:
    indices: np.ndarray    # (N, k) int32, nearest first, the row itself left out
    distances: np.ndarray  # (N, k) float32, in `metric`
    metric: str
    exact: bool
    recall: float          # recall@k against exact neighbours on `sample` rows (1.0 when exact; see _recall)
    sample: int            # rows the recall was measured on (N when exact)
    seconds: float

    @property
    def k(self) -> int:
        return self.indices.shape[1]

    @property
    def how(self) -> str:
        """What the report prints beside a number computed from this graph."""
        return "exact" if self.exact else f"approximate (recall@{self.k} {self.recall:.3f} on {self.sample:,} rows)"

    def with_self(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, k+1) indices and distances with each row first at distance 0: umap-learn's layout for
        `precomputed_knn` (n_neighbors = k + 1)."""
        n = len(self.indices)
        rows = np.arange(n, dtype=self.indices.dtype)[:, None]
        return (np.hstack([rows, self.indices]),
                np.hstack([np.zeros((n, 1), dtype=self.distances.dtype), self.distances]))


def _prepare(x: np.ndarray, metric: str) -> np.ndarray:
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean'; got {metric!r}")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise ValueError("knn_graph needs an (N, D) array of finite embeddings; drop failed (NaN) rows first")
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def exact_neighbours(x: np.ndarray, k: int, metric: str = "cosine", rows: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest other rows of x (N, D) for `rows` (default all) -> indices, distances (R, k),
    nearest first, ties to the lower row. Blocked: about BLOCK_VALUES distances at a time."""
    x = _prepare(x, metric)
    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    sq = (x ** 2).sum(1)  # (N,)
    block = max(1, BLOCK_VALUES // len(x))  # rows per block: 512 MB of distances, whatever N
    idx = np.empty((len(rows), k), dtype=np.int32)
    dist = np.empty((len(rows), k), dtype=np.float32)
    for s in range(0, len(rows), block):
        q = rows[s:s + block]
        g = x[q] @ x.T  # (b, N)
        d = 1 - g if metric == "cosine" else np.sqrt(np.maximum(sq[q, None] + sq[None, :] - 2 * g, 0))
        d[np.arange(len(q)), q] = np.inf  # not its own neighbour
        cut = np.partition(d, k - 1, axis=1)[:, k - 1]  # (b,) the k-th smallest distance of each row
        for j in range(len(q)):  # exact order with ties to the lower row
            cand = np.flatnonzero(d[j] <= cut[j])
            best = cand[np.argsort(d[j, cand], kind="stable")[:k]]
            idx[s + j], dist[s + j] = best, d[j, best]
    return idx, dist


def _approximate(x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    from usearch.index import Index
    n, workers = len(x), threads.fair_count(threads.available_cpus())
    index = Index(ndim=x.shape[1], metric="cos" if metric == "cosine" else "l2sq", dtype="f32",
                  connectivity=CONNECTIVITY, expansion_add=EXPANSION, expansion_search=EXPANSION)
    index.add(np.arange(n), x, threads=workers, log=False)
    found = index.search(x, k + 1, threads=workers, log=False)  # (N, k+1), usually the row itself first
    idx, dist = found.keys.astype(np.int64), found.distances.astype(np.float32)
    own = idx == np.arange(n)[:, None]
    keep = ~own
    keep[~own.any(1), -1] = False  # a row crowded out of its own list by duplicates: drop the farthest
    dist = np.sqrt(np.maximum(dist, 0)) if metric == "euclidean" else dist  # usearch's l2sq is squared
    return idx[keep].reshape(n, k).astype(np.int32), dist[keep].reshape(n, k)


def _recall(x: np.ndarray, graph_dist: np.ndarray, metric: str, sample: int, seed: int) -> tuple[float, int]:
    """recall@k of a graph on `sample` seeded rows: the share of its neighbours no farther than the
    exact k-th neighbour (ANN-benchmarks' definition: equally near points count alike, so ties
    among duplicates do not read as misses)."""
    rows = np.sort(np.random.default_rng(seed).choice(len(x), min(sample, len(x)), replace=False))
    _, truth = exact_neighbours(x, graph_dist.shape[1], metric, rows)  # (S, k) exact distances
    return float((graph_dist[rows] <= truth[:, -1:] + RECALL_EPS).mean()), len(rows)


def knn_graph(x: np.ndarray, k: int = 15, metric: str = "cosine", exact: bool | None = None, seed: int = 0,
              cache: bool | str | os.PathLike = True) -> KnnGraph:
    """The k nearest other rows of every row of x (N, D). exact: None picks exact up to EXACT_UP_TO
    rows and an HNSW index above; True / False forces one. cache: True for the lab cache folder, a
    folder, or False."""
    x = _prepare(x, metric)
    if not 0 < k < len(x):
        raise ValueError(f"knn_graph needs 0 < k < N (N={len(x)}); got k={k}")
    exact = len(x) <= EXACT_UP_TO if exact is None else exact

    def compute():
        start = time.perf_counter()
        idx, dist = exact_neighbours(x, k, metric) if exact else _approximate(x, k, metric)
        recall, sample = (1.0, len(x)) if exact else _recall(x, dist, metric, RECALL_SAMPLE, seed)
        return {"indices": idx, "distances": dist, "recall": recall, "sample": sample,
                "seconds": time.perf_counter() - start}

    found = memo.memoized("knn_graph", [x, {"k": k, "metric": metric, "exact": exact, "seed": seed}], compute,
                          cache, folder_name="projections", code=[__name__], packages=["numpy", "usearch"],
                          kind="npz")
    return KnnGraph(found["indices"], found["distances"], metric, exact, float(found["recall"]),
                    int(found["sample"]), float(found["seconds"]))


def knn_vote(neighbours: np.ndarray, labels) -> np.ndarray:
    """Leave-one-out majority vote of each row's neighbours' labels, ties to the smaller label (as
    scikit-learn) -> (N,) predicted labels. neighbours: (N, k) rows, the row itself left out."""
    labels = np.asarray(labels)
    classes, codes = np.unique(labels, return_inverse=True)
    votes = np.zeros((len(labels), len(classes)), dtype=np.int32)  # (N, C)
    np.add.at(votes, (np.repeat(np.arange(len(labels)), neighbours.shape[1]), codes[neighbours].ravel()), 1)
    return classes[votes.argmax(1)]
