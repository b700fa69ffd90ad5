"""Image-text retrieval: recall@k both ways, median rank, and a documented rule for ties.

    from lab.studies import retrieval
    from lab.data.captions import world_captions, flickr30k, mscoco
    cs = world_captions(n_images=1000)                           # or flickr30k(root), mscoco(root)
    img, txt = model.encode_images(cs.images), model.encode_texts(cs.captions)
    table = retrieval.evaluate(img, txt, cs)                     # direction x positives: R@1/5/10, median rank, tied share
    retrieval.recall_at_k(scores, positives, ks=(1, 5, 10))      # scores (Q, N), positives (Q, N) bool

A query counts at k when any of its positives is among its top k (CLIP_benchmark's rule;
text->image: each caption's image; image->text: any of the image's captions).
Ties: a query's rank is 1 + the number of non-positive candidates scoring at least as high as its
best positive ("ties count against the query"; deterministic, independent of candidate order).
ShapeWorld's grammar repeats captions, so two images' identical captions tie exactly; the share
of queries where a non-positive ties with the best positive is reported as `tied`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["KS", "ranks", "recall_at_k", "summary", "evaluate", "by_group"]

KS = (1, 5, 10)


def ranks(scores: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank of each query's best positive under the tie rule above, and whether a non-positive
    ties with it -> ((Q,) int, (Q,) bool). Every query needs at least one positive."""
    scores, positives = np.asarray(scores, dtype=np.float64), np.asarray(positives, dtype=bool)
    if scores.shape != positives.shape:
        raise ValueError(f"scores {scores.shape} and positives {positives.shape} must have the same shape")
    empty = np.flatnonzero(~positives.any(1))
    if len(empty):
        raise ValueError(f"{len(empty)} queries have no positive (e.g. query {empty[0]}); drop them first")
    best = np.where(positives, scores, -np.inf).max(1, keepdims=True)  # (Q, 1)
    negative = ~positives
    above = ((scores > best) & negative).sum(1)
    tied = ((scores == best) & negative).sum(1)
    return 1 + above + tied, tied > 0


def recall_at_k(scores: np.ndarray, positives: np.ndarray, ks=KS) -> dict[int, float]:
    """{k: share of queries with a positive in their top k} for scores (Q, N), positives (Q, N)."""
    r, _ = ranks(scores, positives)
    return {int(k): float((r <= k).mean()) for k in ks}


def summary(scores: np.ndarray, positives: np.ndarray, ks=KS) -> dict:
    """R@k for every k, median rank, tied share and the number of queries."""
    r, tied = ranks(scores, positives)
    return {**{f"R@{k}": float((r <= k).mean()) for k in ks}, "median_rank": float(np.median(r)),
            "tied": float(tied.mean()), "n_queries": len(r)}


def evaluate(image_emb: np.ndarray, text_emb: np.ndarray, caption_set, ks=KS) -> pd.DataFrame:
    """text->image and image->text retrieval over a caption set, with its exact positives (each
    caption's own image) and, where the set has them, consistent ones (every image the caption is
    true of) -> one row per (direction, positives)."""
    scores = np.nan_to_num(np.asarray(text_emb) @ np.asarray(image_emb).T, nan=-np.inf)  # (T, N)
    rows = []
    for kind, pos in caption_set.positives().items():  # (T, N) bool
        rows.append({"direction": "text→image", "positives": kind, **summary(scores, pos, ks)})
        rows.append({"direction": "image→text", "positives": kind, **summary(scores.T, pos.T, ks)})
    return pd.DataFrame(rows)


def by_group(image_emb: np.ndarray, text_emb: np.ndarray, caption_set, groups, positives: str = "exact",
             ks=KS) -> pd.DataFrame:
    """text->image R@k per group of captions (e.g. which attributes a caption names) -> one row per group."""
    scores = np.asarray(text_emb) @ np.asarray(image_emb).T  # (T, N)
    pos = caption_set.positives()[positives]
    r, tied = ranks(scores, pos)
    frame = pd.DataFrame({"group": np.asarray(groups), "rank": r, "tied": tied})
    out = frame.groupby("group").agg(n=("rank", "size"), median_rank=("rank", "median"), tied=("tied", "mean"))
    for k in ks:
        out[f"R@{k}"] = frame.assign(hit=frame["rank"] <= k).groupby("group")["hit"].mean()
    return out.reset_index()
