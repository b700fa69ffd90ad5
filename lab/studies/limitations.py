"""The weaknesses the CLIP model card admits, measured: counting, close captions, typographic attacks,
and unseen backgrounds (the drawings learners upload).

    from lab.studies import limitations as lim
    lim.counting_study(model)              # zero-shot (specific vs generic templates) vs linear probe, balanced 1-4
    lim.close_caption_study(model)         # true caption + distractors, then + one caption off in position/count/size
    lim.typographic_study(model, sets)     # per condition: top-1, flip rate, written-class rate; reading effect
    lim.background_study(model)            # shape and colour top-1 on light, dark, saturated, muted backgrounds

Every study returns plain DataFrames (accuracies with 95 % Clopper-Pearson intervals) built from
cached embeddings; zero-shot uses the world's prompt ensembles (lab.data.world.task_prompts).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.shapeworld import WorldDataset
from ..data.studies import backgrounds_set, counting_set
from ..data.world import COUNTS, POSITIONS, SIZES, SPLIT_SEEDS, plural, task_prompts
from . import linear_probe as lp, zeroshot
from .stats import clopper_pearson

__all__ = ["GENERIC_COUNT", "world_weights", "counting_study", "full_caption", "close_caption_study",
           "typographic_study", "reading_effect", "background_study"]

GENERIC_COUNT = "a picture of {} objects."  # CLIP_benchmark's clevr_count template (singular for one)


def _rate(hits: np.ndarray) -> dict:
    k, n = int(np.sum(hits)), len(hits)
    lo, hi = clopper_pearson(k, n)
    return {"n": n, "rate": k / n if n else np.nan, "low": float(lo), "high": float(hi)}


def world_weights(model, task: str, shapes=None) -> np.ndarray:
    """(C, D) zero-shot weights for a world task from its prompt ensembles."""
    kwargs = {"shapes": shapes} if shapes is not None else {}
    return zeroshot.class_weights(model, task_prompts(task, **kwargs))


# -- counting ------------------------------------------------------------------------------------

def counting_study(model, n_train: int = 800, n_val: int = 200, n_test: int = 400) -> pd.DataFrame:
    """Balanced counting (1-4 objects, equal numbers): zero-shot with the world's specific prompts
    ('a photo of three red circles.', ensembled over colours and shapes), with the generic
    'a picture of {n} objects.', and the paper's linear probe -> one row per method and true count
    ('all' for the whole set): method, count, n, rate (top-1), low, high."""
    sets = {s: counting_set(n, s) for s, n in (("train", n_train), ("val", n_val), ("test", n_test))}
    x = {s: model.encode_images(d, progress=False) for s, d in sets.items()}
    y = {s: d.labels["label"].to_numpy() for s, d in sets.items()}
    generic = [[GENERIC_COUNT.format(c).replace("one objects", "one object")] for c in COUNTS]
    preds = {"zero-shot (specific prompts)": zeroshot.predict(x["test"], world_weights(model, "count")),
             "zero-shot (generic prompt)": zeroshot.predict(x["test"], zeroshot.class_weights(model, generic))}
    probe = lp.probe(x["train"], y["train"], x["val"], y["val"], x["test"], y["test"], n_classes=4)
    preds["linear probe"] = probe.classifier.predict(x["test"])
    rows = []
    for method, pred in preds.items():
        hit = pred == y["test"]
        rows.append({"method": method, "count": "all", **_rate(hit)})
        rows += [{"method": method, "count": COUNTS[c], **_rate(hit[y["test"] == c])} for c in range(4)]
    return pd.DataFrame(rows)


# -- close captions ------------------------------------------------------------------------------

def full_caption(labels: dict) -> str:
    """A caption naming every attribute: 'a photo of a small red circle in the top left.' /
    'a photo of three medium red circles.'"""
    if labels["count"] == 1:
        return f"a photo of a {labels['size']} {labels['colour']} {labels['shape']} in the {labels['position']}."
    return f"a photo of {COUNTS[labels['count'] - 1]} {labels['size']} {labels['colour']} {plural(labels['shape'])}."


def _close(labels: dict, kind: str, rng) -> dict | None:
    """The labels with one attribute changed (None when it does not apply: position needs one object)."""
    if kind == "position":
        if labels["count"] != 1:
            return None
        return labels | {"position": rng.choice([p for p in POSITIONS if p != labels["position"]])}
    if kind == "count":
        return labels | {"count": int(rng.choice([c for c in (1, 2, 3, 4) if c != labels["count"]])),
                         "position": labels["position"] if labels["count"] == 1 else POSITIONS[4]}
    if kind == "size":
        return labels | {"size": rng.choice([s for s in SIZES if s != labels["size"]])}
    raise KeyError(f"unknown close-caption kind {kind!r}; kinds are position, count, size")


def close_caption_study(model, n: int = 300, n_distractors: int = 9, kinds=("position", "count", "size"),
                        seed: int = 0) -> pd.DataFrame:
    """The paper's close-caption test (§7.2) on world test images: each image against its full caption
    and `n_distractors` captions of other images (top-1 before), then with one more caption that
    differs only in `kind` (top-1 after; how often the close caption wins). One row per kind."""
    ds = WorldDataset("test", n)
    img = model.encode_images(ds, progress=False)  # (N, D)
    labels = ds.labels.to_dict("records")
    rows = []
    for kind in kinds:
        rng = np.random.default_rng([seed, SPLIT_SEEDS["test"], len(kind)])
        items, texts = [], []
        for i, lab in enumerate(labels):
            close = _close(lab, kind, rng)
            if close is None:
                continue
            others = rng.choice([j for j in range(n) if full_caption(labels[j]) != full_caption(lab)],
                                n_distractors, replace=False)
            items.append(i)
            texts.append([full_caption(lab), full_caption(close)] + [full_caption(labels[j]) for j in others])
        flat = sorted({t for row in texts for t in row})
        emb = model.encode_texts(flat, progress=False)
        index = {t: k for k, t in enumerate(flat)}
        scores = np.stack([emb[[index[t] for t in row]] @ img[i] for i, row in zip(items, texts)])  # (M, 2 + d)
        before = np.delete(scores, 1, axis=1).argmax(1) == 0
        after = scores.argmax(1)
        rows.append({"kind": kind, "n": len(items), "candidates_before": n_distractors + 1,
                     "top1_before": float(before.mean()), "top1_after": float((after == 0).mean()),
                     "close_wins": float((after == 1).mean())})
    return pd.DataFrame(rows)


# -- typographic attacks -------------------------------------------------------------------------

def typographic_study(model, sets: dict) -> tuple[pd.DataFrame, dict]:
    """Zero-shot shape classification under each condition of lab.data.studies.typographic_sets ->
    (table: condition, n, top1 (+ interval), flip_rate (prediction differs from clean), written_rate
    (predicts the class the 'wrong' condition writes), predictions {condition: (N,)})."""
    classes = list(sets["clean"].classes)
    W = world_weights(model, "shape", shapes=classes)
    preds = {c: zeroshot.predict(model.encode_images(ds, progress=False), W) for c, ds in sets.items()}
    written = sets["clean"].labels["written"].to_numpy()
    rows = []
    for cond, ds in sets.items():
        top1 = _rate(preds[cond] == ds.labels["label"].to_numpy())
        rows.append({"condition": cond, "n": top1["n"], "top1": top1["rate"], "top1_low": top1["low"],
                     "top1_high": top1["high"],
                     "flip_rate": np.nan if cond == "word_only" else float((preds[cond] != preds["clean"]).mean()),
                     "written_rate": float((preds[cond] == written).mean())})
    return pd.DataFrame(rows), preds


def reading_effect(table: pd.DataFrame) -> float:
    """How much more often the written class is predicted under a wrong class name than under a
    nonsense word (the same images, band and place): > 0 means the model reads."""
    rate = table.set_index("condition")["written_rate"]
    return float(rate["wrong"] - rate["nonsense"])


# -- backgrounds ---------------------------------------------------------------------------------

def background_study(model, dataset=None) -> pd.DataFrame:
    """Zero-shot shape and colour top-1 (with intervals) per background kind of
    lab.data.studies.backgrounds_set: rows (background, task, n, top1, top1_low, top1_high)."""
    dataset = dataset if dataset is not None else backgrounds_set()
    emb = model.encode_images(dataset, progress=False)  # (N, D)
    kinds = dataset.labels["style"].to_numpy()
    rows = []
    for task in ("shape", "colour"):
        hits = zeroshot.predict(emb, world_weights(model, task)) == dataset.task_labels(task)
        for kind in dict.fromkeys(kinds):
            rate = _rate(hits[kinds == kind])
            rows.append({"background": kind, "task": task, "n": rate["n"], "top1": rate["rate"],
                         "top1_low": rate["low"], "top1_high": rate["high"]})
    return pd.DataFrame(rows)
