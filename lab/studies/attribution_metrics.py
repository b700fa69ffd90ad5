"""How right is an attribution map? Measures against ground truth (ShapeWorld's object masks,
or user boxes/masks) and against the model itself (deletion / insertion).

    hits = pointing_game(maps, masks, tolerance=2)         # (N,) bool
    energy = box_energy(maps, boxes)                       # (N,) share of the map inside the box
    deletion, insertion = deletion_insertion(model, images, maps, texts, labels)   # (N,) AUCs
    masks, boxes = world_targets(model, dataset, indices)  # ShapeWorld ground truth, aligned to the model's view
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageFilter
from scipy import ndimage

from ..data import dataset_identity
from .attribution import attribute, image_keys, memoized, model_inputs, score_fn

__all__ = ["pointing_game", "box_energy", "deletion_insertion", "object_shares", "rank_correlation", "randomization_check",
           "align_mask", "world_targets"]


def pointing_game(maps: np.ndarray, masks: np.ndarray, tolerance: int = 0) -> np.ndarray:
    """Hit when the map's maximum lies on the object mask, or within `tolerance` pixels of it
    (in any direction, diagonals included)."""
    hits = []
    for m, mask in zip(maps, masks):
        y, x = np.unravel_index(np.argmax(m), m.shape)
        grown = ndimage.binary_dilation(mask, np.ones((3, 3), bool), iterations=tolerance) if tolerance else mask
        hits.append(bool(grown[y, x]))
    return np.array(hits)


def box_energy(maps: np.ndarray, boxes) -> np.ndarray:
    """Share of each map's total inside its box(es): boxes[i] is (x0, y0, x1, y1) or a list of them."""
    out = []
    for m, b in zip(maps, boxes):
        inside = np.zeros(m.shape, dtype=bool)
        for x0, y0, x1, y1 in np.atleast_2d(b).astype(int):
            inside[max(y0, 0):y1, max(x0, 0):x1] = True
        out.append(float(m[inside].sum() / max(m.sum(), 1e-12)))
    return np.array(out)


def _auc(curve: np.ndarray) -> np.ndarray:
    """Trapezoid area under curves (N, S+1) sampled on S+1 evenly spaced fractions of [0, 1]."""
    return ((curve[:, 1:] + curve[:, :-1]) / 2).mean(1)


def deletion_insertion(model, images, maps: np.ndarray, texts: list[str], labels, steps: int = 16,
                       blur: float = 4.0, batch_size: int = 32, cache=True) -> tuple[np.ndarray, np.ndarray]:
    """RISE's deletion and insertion AUCs of maps (N, H, W) for target text labels[i] among `texts`
    (score: softmax probability over the texts). Deletion replaces the most relevant pixels first
    with a blurred copy (lower is better); insertion reveals them first on the blurred copy
    (higher is better); `steps` equal slices of the pixels, AUC by the trapezoid rule.
    Kept in the model's cache folder like attribute()'s maps (cache: True, a folder, or False)."""
    images, maps, labels = list(images), np.asarray(maps), np.asarray(labels)
    if maps.ndim != 3 or len(maps) != len(images) or len(labels) != len(images):
        raise ValueError(f"deletion_insertion needs maps (N, H, W) and N labels for N={len(images)} images; got maps "
                         f"{maps.shape} and {len(labels)} labels (take result.maps[:, k] of attribute())")
    parts = [image_keys(model, images), maps, list(texts), labels, steps, blur]
    found = memoized(model, "deletion_insertion", parts,
                     lambda: _deletion_insertion(model, images, maps, texts, labels, steps, blur, batch_size), cache,
                     code=("lab.studies.attribution", __name__))
    return found["deletion"], found["insertion"]


def _deletion_insertion(model, images, maps, texts, labels, steps, blur, batch_size) -> dict:
    text_emb = torch.from_numpy(model.encode_texts(list(texts), progress=False)).to(model.device)
    f = score_fn(model, text_emb, "softmax")
    deletion, insertion = [], []
    for s in range(0, len(images), batch_size):
        pixels, views = model_inputs(model, images[s:s + batch_size])  # (B, 3, H, W), (B, H, W, 3)
        blurred, _ = model_inputs(model, [Image.fromarray(v).filter(ImageFilter.GaussianBlur(blur)) for v in views])
        b, _, h, w = pixels.shape
        order = torch.from_numpy(np.argsort(-maps[s:s + b].reshape(b, -1), axis=1, kind="stable").copy())  # (B, HW)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(h * w).expand(b, -1).contiguous())  # rank of every pixel
        rank = rank.view(b, 1, h, w).to(pixels.device)
        target = torch.tensor(labels[s:s + b], device=pixels.device)
        curves_del, curves_ins = [], []
        with torch.no_grad():
            for k in range(steps + 1):
                top = rank < round(k / steps * h * w)  # (B, 1, H, W) the k/steps most relevant pixels
                for curves, x in ((curves_del, torch.where(top, blurred, pixels)),
                                  (curves_ins, torch.where(top, pixels, blurred))):
                    curves.append(f(x).gather(1, target[:, None])[:, 0].float().cpu().numpy())
        deletion.append(_auc(np.stack(curves_del, 1)))
        insertion.append(_auc(np.stack(curves_ins, 1)))
    return {"deletion": np.concatenate(deletion), "insertion": np.concatenate(insertion)}


def object_shares(model, attribution, masks: dict, image: int = 0) -> pd.DataFrame:
    """How much of each text's map falls on each object of one image: masks {object: (H, W) bool in
    the original image} -> one row per text: model, method, prompt, score, 'share on <object>'."""
    view_masks = {k: align_mask(model, v) for k, v in masks.items()}
    rows = []
    for p, prompt in enumerate(attribution.texts):
        m = attribution.maps[image, p]
        rows.append({"model": model.name, "method": attribution.method, "prompt": prompt,
                     "score": float(attribution.scores[image, p]),
                     **{f"share on {k}": float(m[mask].sum() / m.sum()) for k, mask in view_masks.items()}})
    return pd.DataFrame(rows)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over images of the Spearman correlation of two maps of each image ((N, H, W) each)."""
    def ranks(m):
        return m.reshape(len(m), -1).argsort(1).argsort(1)
    return float(np.mean([np.corrcoef(x, y)[0, 1] for x, y in zip(ranks(a), ranks(b))]))


def randomization_check(model, random_model, images, texts, methods, labels, seed: int = 0) -> pd.DataFrame:
    """The model-randomization sanity check (Adebayo et al. 2018): per method, the rank correlation
    of the maps of the trained model with those of the same architecture with random weights. A
    method whose maps barely change does not explain the model."""
    rows = []
    for method in methods:
        a = attribute(model, images, texts, method=method, labels=labels, seed=seed).maps[:, 0]
        b = attribute(random_model, images, texts, method=method, labels=labels, seed=seed).maps[:, 0]
        rows.append({"model": model.name, "method": method, "rank correlation trained vs random weights": rank_correlation(a, b)})
    return pd.DataFrame(rows)


def align_mask(model, mask: np.ndarray) -> np.ndarray:
    """A boolean mask of the original image, put through the model's resize/crop -> (H, W) bool
    aligned with the attribution maps."""
    return model.preprocess_image(Image.fromarray(np.uint8(mask) * 255).convert("RGB"))[0].numpy() > 127


def world_targets(model, dataset, indices, cache=True) -> tuple[np.ndarray, list]:
    """ShapeWorld ground truth for items `indices`, aligned to the model's input view:
    masks (N, H, W) bool (union of the objects) and boxes (per item, a list of (x0, y0, x1, y1)).
    Kept in the model's cache folder like attribute()'s maps."""
    indices = [int(i) for i in indices]
    found = memoized(model, "world_targets", [dataset_identity(dataset), indices],
                     lambda: _world_targets(model, dataset, indices), cache, code=(__name__, "lab.data.world", "lab.data.shapeworld"))
    ends = np.cumsum(found["counts"])
    return found["masks"], [[tuple(int(v) for v in b) for b in found["boxes"][e - c:e]]
                            for c, e in zip(found["counts"], ends)]


def _world_targets(model, dataset, indices) -> dict:
    masks, boxes = [], []
    for i in indices:
        sample = dataset.sample(int(i))
        union = np.zeros(np.asarray(sample.masks[0]).shape[:2], dtype=bool)
        for m in sample.masks:
            union |= np.asarray(m) > 0
        view = align_mask(model, union)
        masks.append(view)
        # boxes follow the masks through the same resize/crop: one box per connected object
        labelled, n = ndimage.label(view)
        boxes.append([(sl[1].start, sl[0].start, sl[1].stop, sl[0].stop) for sl in ndimage.find_objects(labelled)]
                     if n else [(0, 0, 0, 0)])
    return {"masks": np.stack(masks), "boxes": np.array([b for bs in boxes for b in bs], dtype=np.int64).reshape(-1, 4),
            "counts": np.array([len(bs) for bs in boxes])}
