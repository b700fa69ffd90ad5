"""A million-point map for the explorer's scale checks (tests/browser/test_explorer_scale_in_lab.py,
benchmarks/bench_explorer_scale.py): 2,000 ShapeWorld images give the thumbnails; each of the N
points is a noisy copy of one image's lab-vit-tiny embedding, placed near that image's PCA position
(a Gaussian mixture of 2,000 components), so selections and queries find coherent images.

    from tests.browser._million import million_arrays
    x, coords, points, data, model = million_arrays()      # (N, D), (N, 2), N rows; ~20 s cold
    EmbeddingExplorer.from_arrays(x, coords, points, data, model)
"""
from __future__ import annotations

import numpy as np

__all__ = ["million_arrays"]


def million_arrays(n: int = 1_000_000, images: int = 2000, noise: float = 0.01, seed: int = 0):
    """-> (x (n, D) unit rows, coords (n, 2) float32, points (n rows; `item` indexes `data`), data, model)."""
    import lab
    from lab.data import load_dataset
    from lab.studies import maps as em
    model = lab.load_model("lab-vit-tiny")
    data = load_dataset("shapeworld", "", "all", images, seed)
    table, emb = em.point_table(data, model.encode_images(data, progress=False))  # emb: (I, D)
    centres = em.project(emb, "pca", 2).coords  # (I, 2)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(table), n)  # (n,): the image each point copies
    spread = 0.02 * float(centres.std())
    coords = (centres[pick] + rng.normal(scale=spread, size=(n, 2))).astype(np.float32)
    x = emb[pick] + rng.standard_normal((n, emb.shape[1]), dtype=np.float32) * np.float32(noise)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, coords, table.iloc[pick].reset_index(drop=True), data, model
