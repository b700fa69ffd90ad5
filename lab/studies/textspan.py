"""TextSpan (Gandelsman, Efros & Steinhardt, ICLR 2024): describe an attention head by a greedy basis of
texts. The head's outputs over a dataset (its parts in lab.studies.decomposition) are centred and kept
in their top principal directions; each text embedding is projected into that subspace; the text whose
direction explains most of the remaining variance is picked, its direction projected out of the outputs
and the texts, and so on.

    span = text_span(d.head(3, 1), text_emb, texts, m=5)     # a Span: its table and its basis (m, D)
    span.table                  # rank, text, variance_explained (cumulative, in the subspace), gain
    span.reconstruct(outputs)   # the outputs' mean + their projection on the basis
    heads = describe_heads(d, text_emb, texts, last=2, m=5)   # every head of the last 2 layers
    world_pool()                # the default pool: ShapeWorld's shapes, colours, sizes, counts, places, captions
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Span", "text_span", "describe_heads", "world_pool"]


@dataclass
class Span:
    """table: one row per pick (rank, text, variance_explained, gain); basis (m, D): the orthonormal
    directions picked (each text's direction once the earlier ones are projected out); subspace (k, D):
    where TextSpan works (the outputs' top principal directions)."""
    table: pd.DataFrame
    basis: np.ndarray
    subspace: np.ndarray
    mean: np.ndarray

    def reconstruct(self, outputs: np.ndarray) -> np.ndarray:
        """(N, D) outputs -> their mean plus their projection on the picked basis."""
        return self.mean + (outputs - self.mean) @ self.basis.T @ self.basis


def text_span(outputs: np.ndarray, text_emb: np.ndarray, texts: list[str], m: int = 5,
              dim: int | None = None) -> Span:
    """Greedy text basis of size m for outputs (N, D) from a pool of texts (M, D); dim: the number of the
    outputs' principal directions to work in (default: all with variance, at most N - 1 and D)."""
    outputs, text_emb = np.asarray(outputs, np.float64), np.asarray(text_emb, np.float64)
    if len(texts) != len(text_emb):
        raise ValueError(f"{len(texts)} texts for {len(text_emb)} text embeddings")
    mean = outputs.mean(0)
    centred = outputs - mean  # (N, D)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    rank = int((s > s[0] * 1e-9).sum()) if len(s) and s[0] > 0 else 0
    subspace = vt[:min(dim or rank, rank)]  # (k, D)
    remaining = centred @ subspace.T @ subspace  # (N, D) the outputs within the subspace
    pool = text_emb @ subspace.T @ subspace  # (M, D) the texts within it
    total = float((remaining ** 2).sum())
    rows, basis, explained = [], [], 0.0
    for rank_i in range(min(m, len(subspace))):
        norms = np.linalg.norm(pool, axis=1)
        usable = norms > 1e-8 * max(norms.max(initial=0.0), 1e-30)
        if not usable.any():
            break
        directions = np.where(usable[:, None], pool / np.maximum(norms, 1e-30)[:, None], 0.0)  # (M, D)
        gains = ((remaining @ directions.T) ** 2).sum(0)  # (M,) variance along each text's direction
        pick = int(np.argmax(np.where(usable, gains, -1.0)))
        u = directions[pick]
        remaining = remaining - np.outer(remaining @ u, u)
        pool = pool - np.outer(pool @ u, u)
        gain = float(gains[pick]) / total if total else 0.0
        explained += gain
        basis.append(u)
        rows.append({"rank": rank_i + 1, "text": texts[pick], "variance_explained": explained, "gain": gain})
    return Span(pd.DataFrame(rows), np.array(basis).reshape(-1, outputs.shape[1]), subspace, mean)


def describe_heads(d, text_emb: np.ndarray, texts: list[str], last: int = 2, m: int = 5,
                   dim: int | None = None) -> pd.DataFrame:
    """TextSpan for every head of the last `last` layers of a Decomposition -> layer, head, rank, text,
    variance_explained, gain."""
    frames = []
    for layer in range(max(0, d.layers - last), d.layers):
        for head in range(d.heads):
            span = text_span(d.head(layer, head), text_emb, texts, m, dim)
            frames.append(span.table.assign(layer=layer, head=head))
    return pd.concat(frames, ignore_index=True)[["layer", "head", "rank", "text", "variance_explained", "gain"]]


def world_pool(n_captions: int = 40, seed: int = 0) -> list[str]:
    """ShapeWorld's vocabulary as short texts (shapes, colours, sizes, counts, positions, styles) and seeded
    captions of its scenes: TextSpan's default pool. For real data, pass any list of texts."""
    from ..data import world
    words = ([f"a {s}" for s in world.SHAPES] + [f"something {c}" for c in world.COLOURS]
             + [f"a {s} object" for s in world.SIZES] + [f"{c} objects" for c in world.COUNTS]
             + [f"an object at the {p}" for p in world.POSITIONS] + [f"a {s} style" for s in world.STYLES])
    rng = np.random.default_rng(seed)
    captions = [world.caption(world.draw_scene(rng), rng) for _ in range(n_captions)]
    return list(dict.fromkeys(words + captions))
