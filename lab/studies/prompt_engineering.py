"""Prompt-engineering analysis, as the CLIP authors ran it on ImageNet: accuracy of each template
alone, of the full ensemble, of a greedy forward selection of templates chosen on a validation
split and reported on a held-out split, accuracy against the number of templates, and sensitivity
to class-name wording.

    P = prompt_embeddings(model, names, temps)                 # (C, T, D), every prompt encoded once
    per_template = template_accuracies(P, test_emb, y_test, temps)
    greedy = greedy_selection(P, val_emb, y_val, test_emb, y_test, temps, max_templates=10)
    curve = template_count_curve(P, test_emb, y_test)
    wording = classname_sensitivity(model, test_emb, y_test, {"curated": a, "original": b}, temps)

Every function returns a DataFrame (accuracies are fractions in [0, 1]).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..data import prompts
from .zeroshot import normalize, predict, valid

__all__ = ["prompt_embeddings", "subset_weights", "template_accuracies", "greedy_selection", "template_count_curve",
           "classname_sensitivity", "compare_methods"]


def prompt_embeddings(model, names: list[str], template_list: list[str], **encode_kwargs) -> np.ndarray:
    """Every class name in every template, encoded through the cache -> (C, T, D), L2-normalized."""
    flat = [p for row in prompts.class_prompts(names, template_list) for p in row]
    encode_kwargs.setdefault("progress", False)
    emb = model.encode_texts(flat, **encode_kwargs)  # (C*T, D)
    return emb.reshape(len(names), len(template_list), -1)


def subset_weights(prompt_emb: np.ndarray, idx) -> np.ndarray:
    """Classifier (C, D) of the ensemble of templates `idx` (a list of template indices)."""
    return normalize(prompt_emb[:, list(idx)].mean(1))


def _topk(image_emb: np.ndarray, weights: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    top = predict(image_emb, weights, k=5)  # (N, 5)
    return float((top[:, 0] == labels).mean()), float((top == labels[:, None]).any(1).mean())


def _clean(image_emb, labels):
    labels = np.asarray(labels)
    keep = valid(image_emb, labels)
    return image_emb[keep], labels[keep]


def template_accuracies(prompt_emb: np.ndarray, image_emb: np.ndarray, labels, template_list: list[str]
                        ) -> pd.DataFrame:
    """One row per template (top1, top5 of that template alone), then the full ensemble; sorted best first."""
    x, y = _clean(image_emb, labels)
    rows = [(t, *_topk(x, subset_weights(prompt_emb, [i]), y)) for i, t in enumerate(template_list)]
    df = pd.DataFrame(rows, columns=["template", "top1", "top5"]).sort_values("top1", ascending=False)
    ens = _topk(x, subset_weights(prompt_emb, range(len(template_list))), y)
    df["ensemble_top1"] = ens[0]
    return df.reset_index(drop=True)


def greedy_selection(prompt_emb: np.ndarray, val_emb: np.ndarray, val_labels, test_emb: np.ndarray, test_labels,
                     template_list: list[str], max_templates: int = 10) -> pd.DataFrame:
    """Forward selection: add, one at a time, the template whose addition most raises validation
    top-1 (ties: the earlier template); report each step's ensemble on the held-out split."""
    if max_templates < 1:
        raise ValueError(f"max_templates must be at least 1; got {max_templates}")
    xv, yv = _clean(val_emb, val_labels)
    xt, yt = _clean(test_emb, test_labels)
    chosen: list[int] = []
    total = np.zeros_like(prompt_emb[:, 0])  # (C, D) running sum of the chosen templates
    rows = []
    for step in range(min(max_templates, len(template_list))):
        best, best_acc = -1, -1.0
        for t in range(len(template_list)):
            if t in chosen:
                continue
            acc = float((predict(xv, normalize(total + prompt_emb[:, t])) == yv).mean())
            if acc > best_acc:
                best, best_acc = t, acc
        chosen.append(best)
        total += prompt_emb[:, best]
        test_top1, test_top5 = _topk(xt, normalize(total), yt)
        rows.append((step + 1, template_list[best], best_acc, test_top1, test_top5))
    return pd.DataFrame(rows, columns=["n_templates", "added", "val_top1", "test_top1", "test_top5"])


def template_count_curve(prompt_emb: np.ndarray, image_emb: np.ndarray, labels, sizes=None, draws: int = 20,
                         seed: int = 0) -> pd.DataFrame:
    """Top-1 of ensembles of k randomly drawn templates, for k in `sizes` (default 1, 2, 4, … T):
    mean, std, min and max over `draws` draws."""
    x, y = _clean(image_emb, labels)
    T = prompt_emb.shape[1]
    sizes = sizes or sorted({*(2 ** i for i in range(int(np.log2(T)) + 1)), T})
    rng = np.random.default_rng(seed)
    rows = []
    for k in sizes:
        accs = [float((predict(x, subset_weights(prompt_emb, rng.choice(T, k, replace=False))) == y).mean())
                for _ in range(1 if k == T else draws)]
        rows.append((k, np.mean(accs), np.std(accs), np.min(accs), np.max(accs)))
    return pd.DataFrame(rows, columns=["n_templates", "mean_top1", "std", "min", "max"])


def classname_sensitivity(model, image_emb: np.ndarray, labels, name_sets: dict[str, list[str]],
                          template_list: list[str], **encode_kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Accuracy with each wording of the class names (same templates, same images).
    Returns (summary: one row per name set, per_class: recall of every class under each set plus
    the names, so the classes whose wording matters most can be sorted out)."""
    x, y = _clean(image_emb, labels)
    lengths = {len(v) for v in name_sets.values()}
    if len(lengths) != 1:
        raise ValueError(f"class-name sets differ in length: { {k: len(v) for k, v in name_sets.items()} }")
    C = lengths.pop()
    summary, per_class = [], {"class": np.arange(C)}
    for key, names in name_sets.items():
        w = subset_weights(prompt_embeddings(model, names, template_list, **encode_kwargs), range(len(template_list)))
        top = predict(x, w, k=5)
        summary.append((key, float((top[:, 0] == y).mean()), float((top == y[:, None]).any(1).mean())))
        hit = top[:, 0] == y
        per_class[f"name:{key}"] = names
        per_class[f"recall:{key}"] = [hit[y == c].mean() if (y == c).any() else np.nan for c in range(C)]
    return pd.DataFrame(summary, columns=["names", "top1", "top5"]), pd.DataFrame(per_class)


def compare_methods(prompt_emb: np.ndarray, val_emb: np.ndarray, val_labels, test_emb: np.ndarray, test_labels,
                    template_list: list[str], greedy: pd.DataFrame | None = None,
                    extra: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Held-out top-1/top-5 of: the best single template (chosen on val), the median template,
    the ensemble of all templates, the greedy subset with the best val top-1 (if given), and any
    `extra` classifiers {method: (C, D) weights} such as class-name-only or per-class prompts."""
    xv, yv = _clean(val_emb, val_labels)
    xt, yt = _clean(test_emb, test_labels)
    val_acc = [float((predict(xv, subset_weights(prompt_emb, [i])) == yv).mean()) for i in range(len(template_list))]
    test_acc = [_topk(xt, subset_weights(prompt_emb, [i]), yt) for i in range(len(template_list))]
    best = int(np.argmax(val_acc))
    median = int(np.argsort([a for a, _ in test_acc])[len(test_acc) // 2])
    rows = [(f"best single (on val): {template_list[best]}", *test_acc[best]),
            (f"median single: {template_list[median]}", *test_acc[median]),
            (f"ensemble of all {len(template_list)}", *_topk(xt, subset_weights(prompt_emb, range(len(template_list))), yt))]
    if greedy is not None and len(greedy):
        k = int(greedy.loc[greedy["val_top1"].idxmax(), "n_templates"])
        g = greedy.iloc[k - 1]
        rows.append((f"greedy {k} (chosen on val)", float(g["test_top1"]), float(g["test_top5"])))
    for name, weights in (extra or {}).items():
        rows.append((name, *_topk(xt, weights, yt)))
    return pd.DataFrame(rows, columns=["method", "top1", "top5"])
