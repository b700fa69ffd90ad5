"""Sparse concepts (SpLiCE, Bhalla et al., NeurIPS 2024): an image embedding as a non-negative sparse
combination of concept embeddings. Concepts and images are centred (each by its own mean) and
renormalized, as the paper does, then for each image

    min_w>=0  1/(2D) ||x - C^T w||^2 + l1 ||w||_1        (scikit-learn's Lasso(positive=True) objective)

is solved by exact coordinate descent, every image at once.

    fit = sparse_concepts(image_emb, concept_emb, l1=0.3 * l1_max(image_emb, concept_emb))   # a Fit
    fit.weights (N, M) >= 0, fit.cosine (N,): reconstruction vs the centred image, fit.l0 (N,)
    top_concepts(fit, concepts, k=3)                           # image, rank, concept, weight
    kkt_violation(fit, ...)                                    # how far a solution is from optimal
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Fit", "centre", "l1_max", "sparse_concepts", "kkt_violation", "top_concepts"]


@dataclass
class Fit:
    weights: np.ndarray  # (N, M) non-negative
    targets: np.ndarray  # (N, D) the centred, renormalized image embeddings
    dictionary: np.ndarray  # (M, D) the centred, renormalized concept embeddings
    l1: float
    cosine: np.ndarray  # (N,) cosine between each target and its reconstruction
    l0: np.ndarray  # (N,) concepts used


def centre(x: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """Subtract a mean (default x's own) and L2-normalize the rows."""
    x = np.asarray(x, np.float64)
    c = x - (x.mean(0) if mean is None else mean)
    return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)


def l1_max(image_emb: np.ndarray, concept_emb: np.ndarray, image_mean=None) -> float:
    """The smallest l1 at which every weight is zero (the largest correlation over D): l1 is best given as
    a fraction of it, which does not depend on the embedding's size."""
    y, c = centre(image_emb, image_mean), centre(concept_emb)
    return float(max((y @ c.T).max(), 0.0) / y.shape[1])


def sparse_concepts(image_emb: np.ndarray, concept_emb: np.ndarray, l1: float = 0.02, image_mean=None,
                    max_iter: int = 2000, tol: float = 1e-9) -> Fit:
    """Non-negative Lasso of each centred image embedding over the centred concept embeddings (module
    docstring). image_mean: the mean to centre images by (default: theirs; the paper uses a dataset's)."""
    y = centre(image_emb, image_mean)  # (N, D)
    c = centre(concept_emb)  # (M, D)
    n, d = y.shape
    w = np.zeros((n, len(c)))
    residual = y.copy()  # (N, D) y - w @ c
    sq = (c ** 2).sum(1)  # (M,)
    for _ in range(max_iter):
        change = 0.0
        for j in range(len(c)):
            old = w[:, j].copy()
            rho = residual @ c[j] + old * sq[j]  # (N,)
            new = np.maximum(0.0, (rho - l1 * d) / sq[j])
            delta = new - old
            if np.any(delta):
                residual -= np.outer(delta, c[j])
                w[:, j] = new
                change = max(change, float(np.abs(delta).max()))
        if change < tol:
            break
    recon = w @ c
    cosine = (recon * y).sum(1) / np.maximum(np.linalg.norm(recon, axis=1), 1e-12)
    return Fit(w, y, c, l1, cosine, (w > 0).sum(1))


def kkt_violation(fit: Fit) -> float:
    """The largest violation of the non-negative Lasso's optimality conditions: with g the gradient of the
    squared loss, g_j + l1 = 0 where w_j > 0 and g_j + l1 >= 0 where w_j = 0."""
    d = fit.targets.shape[1]
    g = -(fit.targets - fit.weights @ fit.dictionary) @ fit.dictionary.T / d  # (N, M)
    active = fit.weights > 0
    return float(max(np.abs(g + fit.l1)[active].max(initial=0.0), (-(g + fit.l1))[~active].max(initial=0.0)))


def top_concepts(fit: Fit, concepts: list[str], k: int = 3) -> pd.DataFrame:
    """Each image's k heaviest concepts -> image, rank, concept, weight (only concepts with weight > 0)."""
    order = np.argsort(-fit.weights, axis=1, kind="stable")[:, :k]
    rows = [{"image": i, "rank": r + 1, "concept": concepts[j], "weight": float(fit.weights[i, j])}
            for i in range(len(order)) for r, j in enumerate(order[i]) if fit.weights[i, j] > 0]
    return pd.DataFrame(rows, columns=["image", "rank", "concept", "weight"])
