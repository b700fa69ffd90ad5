"""Zero-shot classification math on embeddings: per-class prompt ensembles -> classifier weights,
then predictions and accuracy.

    W = class_weights(model, {"cat": ["a photo of a cat."], ...})   # (C, D)
    pred = predict(image_emb, W)                                      # (N,)
"""
from __future__ import annotations

import numpy as np


def ensemble(prompt_emb: np.ndarray) -> np.ndarray:
    """Average L2-normalized prompt embeddings (P, D) and renormalize -> (D,)."""
    v = prompt_emb / np.linalg.norm(prompt_emb, axis=1, keepdims=True)
    v = v.mean(0)
    return v / np.linalg.norm(v)


def class_weights(model, class_prompts: dict[str, list[str]], **encode_kwargs) -> np.ndarray:
    """Encode every prompt once (through the cache) and ensemble per class -> (C, D)."""
    names = list(class_prompts)
    flat = [p for n in names for p in class_prompts[n]]
    emb = model.encode_texts(flat, **encode_kwargs)  # (sum P, D)
    out, s = [], 0
    for n in names:
        k = len(class_prompts[n])
        out.append(ensemble(emb[s:s + k]))
        s += k
    return np.stack(out)


def predict(image_emb: np.ndarray, weights: np.ndarray, k: int = 1) -> np.ndarray:
    """Top-k class indices per image: (N,) for k=1, else (N, k) best first."""
    logits = image_emb @ weights.T  # (N, C)
    if k == 1:
        return logits.argmax(1)
    return np.argsort(-logits, axis=1)[:, :k]


def accuracy(image_emb: np.ndarray, weights: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy over the items with a label >= 0 (and finite embeddings)."""
    keep = (labels >= 0) & np.isfinite(image_emb).all(1)
    return float((predict(image_emb[keep], weights) == labels[keep]).mean())
