"""Zero-shot classification: prompts -> classifier weights -> predictions and their evaluation.

    names, temps = prompts.classnames("imagenet"), prompts.templates("openai-imagenet")
    W = class_weights(model, prompts.class_prompts(names, temps))   # (C, D)
    result = evaluate(image_emb, W, labels, names)                  # top-1/top-5, per class, confusion
    result.top1, result.per_class, result.predictions

The classifier follows CLIP: encode every prompt (through the cache), L2-normalize, average per
class, renormalize. Classes are identified by index, never by name (ImageNet's curated names repeat).

Scores follow the model (`score_args(model)`): logits are scale * cosine + bias, and probabilities
are a softmax over the classes for a CLIP (trained with a contrastive softmax) or a sigmoid per
class for a SigLIP (trained with a sigmoid per image-text pair; they need not sum to 1). Top-1 is
the same either way; confidences, thresholds and calibration are not.

    result = evaluate(image_emb, W, labels, names, **score_args(model))
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["LINKS", "normalize", "ensemble", "class_weights", "logits", "softmax", "sigmoid", "probabilities",
           "score_args", "link_label", "predict", "valid", "accuracy", "Evaluation", "evaluate", "classify_image"]

LINKS = ("softmax", "sigmoid")


def normalize(x: np.ndarray) -> np.ndarray:
    """L2-normalize along the last axis."""
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def ensemble(prompt_emb: np.ndarray) -> np.ndarray:
    """Average L2-normalized prompt embeddings (P, D) and renormalize -> (D,)."""
    return normalize(normalize(prompt_emb).mean(0))


def class_weights(model, class_prompts, **encode_kwargs) -> np.ndarray:
    """Per-class prompt lists ([[prompt, ...], ...] in class order; or {name: [prompts]} when names
    are unique) -> (C, D) classifier weights. Every prompt is encoded once, in one pass, through the cache."""
    lists = list(class_prompts.values()) if isinstance(class_prompts, dict) else list(class_prompts)
    encode_kwargs.setdefault("progress", False)
    emb = model.encode_texts([p for ps in lists for p in ps], **encode_kwargs)  # (sum P, D)
    ends = np.cumsum([len(ps) for ps in lists])
    return np.stack([ensemble(emb[e - len(ps):e]) for ps, e in zip(lists, ends)])


def logits(image_emb: np.ndarray, weights: np.ndarray, scale: float = 100.0, bias: float = 0.0) -> np.ndarray:
    """Scaled cosine similarities plus the model's bias, (N, D) x (C, D) -> (N, C)."""
    return scale * image_emb @ weights.T + bias


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), without overflow for large |z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def probabilities(z: np.ndarray, link: str = "softmax") -> np.ndarray:
    """Logits (..., C) -> probabilities: a softmax over the last axis, or a sigmoid per entry."""
    if link not in LINKS:
        raise ValueError(f"link must be one of {LINKS}; got {link!r}")
    return softmax(z) if link == "softmax" else sigmoid(z)


def score_args(model) -> dict:
    """How a model's scores are made, as keyword arguments for evaluate, logits and the studies:
    {scale, bias, link} from the checkpoint (CLIP: its scale, bias 0, softmax; SigLIP: scale, bias, sigmoid)."""
    return {"scale": model.logit_scale, "bias": model.logit_bias, "link": model.link}


def link_label(link: str) -> str:
    """What a probability means under a link, for figures and tables."""
    return {"softmax": "softmax over the classes", "sigmoid": "sigmoid per class (need not sum to 1)"}[link]


def predict(image_emb: np.ndarray, weights: np.ndarray, k: int = 1) -> np.ndarray:
    """Top-k class indices per image: (N,) for k=1, else (N, k) best first. Ties (e.g. two
    classes with the same name and prompts) go to the lower index, for every k alike."""
    scores = image_emb @ weights.T  # (N, C)
    if k == 1:
        return scores.argmax(1)
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def valid(image_emb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Items that count: a label >= 0 and a finite embedding (failed images are NaN rows)."""
    return (np.asarray(labels) >= 0) & np.isfinite(image_emb).all(1)


def accuracy(image_emb: np.ndarray, weights: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy over the valid items."""
    keep = valid(image_emb, labels)
    return float((predict(image_emb[keep], weights) == np.asarray(labels)[keep]).mean())


@dataclass
class Evaluation:
    """What `evaluate` returns. `per_class`: one row per class (index, name, n, recall);
    `confusion`: (C, C) counts, rows = true class; `predictions`: one row per valid item."""
    top1: float
    top5: float
    mean_per_class_recall: float
    per_class: pd.DataFrame
    confusion: np.ndarray
    predictions: pd.DataFrame

    def summary(self) -> dict:
        return {"top1": self.top1, "top5": self.top5, "mean_per_class_recall": self.mean_per_class_recall,
                "n": len(self.predictions)}


def evaluate(image_emb: np.ndarray, weights: np.ndarray, labels, classes: list[str],
             scale: float = 100.0, bias: float = 0.0, link: str = "softmax") -> Evaluation:
    """Top-1, top-5, mean per-class recall, per-class accuracy, confusion matrix, per-item predictions.
    Items with label -1 or a NaN embedding are left out (their row index is kept in `predictions.item`).
    `confidence` and `true_prob` are the model's probabilities under its link (`score_args(model)`)."""
    labels = np.asarray(labels)
    if weights.shape[0] != len(classes) or labels.max(initial=-1) >= len(classes):
        raise ValueError(f"{weights.shape[0]} classifier rows, {len(classes)} class names and labels up to "
                         f"{labels.max(initial=-1)} do not match: build the weights from the dataset's class list")
    keep = valid(image_emb, labels)
    if not keep.any():
        raise ValueError("no valid items to evaluate (every label is -1 or every embedding failed)")
    items, y = np.flatnonzero(keep), labels[keep]
    probs = probabilities(logits(image_emb[keep], weights, scale, bias), link)  # (N, C)
    top = predict(image_emb[keep], weights, k=5)  # (N, k)
    pred = top[:, 0]
    C = len(classes)
    confusion = np.zeros((C, C), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    support = confusion.sum(1)
    recall = np.divide(np.diag(confusion), support, out=np.full(C, np.nan), where=support > 0)
    per_class = pd.DataFrame({"class": np.arange(C), "name": classes, "n": support, "recall": recall})
    predictions = pd.DataFrame({
        "item": items, "label": y, "label_name": [classes[i] for i in y],
        "pred": pred, "pred_name": [classes[i] for i in pred],
        "confidence": probs[np.arange(len(y)), pred], "true_prob": probs[np.arange(len(y)), y],
        "correct": pred == y, "in_top5": (top == y[:, None]).any(1), "top5": list(top)})
    return Evaluation(top1=float(predictions["correct"].mean()), top5=float(predictions["in_top5"].mean()),
                      mean_per_class_recall=float(np.nanmean(recall)), per_class=per_class,
                      confusion=confusion, predictions=predictions)


def classify_image(model, image, names: list[str], template_list: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One image (path, PIL image or array) against every class name in every template.
    Returns (classes: class, name, probability of the template ensemble, best first;
    per_template: template, predicted name, its probability, and the probability it gives the
    ensemble's top class). Probabilities under the model's link (model.link)."""
    from ..data import prompts
    x = model.encode_images([image], progress=False, strict=True)  # (1, D)
    P = model.encode_texts([p for row in prompts.class_prompts(names, template_list) for p in row],
                           progress=False).reshape(len(names), len(template_list), -1)  # (C, T, D)
    scale, bias, link = model.logit_scale, model.logit_bias, model.link
    probs = probabilities(logits(x, normalize(normalize(P).mean(1)), scale, bias), link)[0]  # (C,)
    per_t = probabilities(scale * np.einsum("d,ctd->tc", x[0], P) + bias, link)  # (T, C)
    top = int(probs.argmax())
    classes = pd.DataFrame({"class": np.arange(len(names)), "name": names, "probability": probs}) \
        .sort_values("probability", ascending=False).reset_index(drop=True)
    per_template = pd.DataFrame({"template": template_list, "predicted": [names[i] for i in per_t.argmax(1)],
                                 "probability": per_t.max(1), "p(ensemble top)": per_t[:, top]})
    return classes, per_template
