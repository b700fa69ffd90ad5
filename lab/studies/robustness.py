"""Robustness across distribution shifts: accuracy of any classifier on a suite of shifted sets,
supervised baselines fitted to the clean distribution, and effective robustness (Taori et al. 2020).

    sets, pairs = world_shift_sets(n=500)                  # ShapeWorld; or real adapters (lab.data.shifts)
    zs = zero_shot_classifier(model, templates)            # predict(dataset) -> (N, 5) top-5 class indices
    table = evaluate(zs, sets)                             # shift, n, top1, top5, 95 % Clopper-Pearson
    probe = linear_probe(model, train, val)                # logistic regression on cached features
    cnn = cnn_baseline(width=16, epochs=5)                 # ShapeWorld: a small CNN, cached on disk
    a, b = fit_line(id_acc, shift_acc)                     # logit(shift) = a logit(ID) + b over baselines
    effective_robustness(id_acc, shift_acc, a, b)          # distance above that line

A classifier is any function dataset -> (N, k) top-k indices into dataset.classes (-1 rows for
images that failed). A prediction is right when it equals `label`, or falls in `correct` (ObjectNet).
"""
from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..core import memo
from ..core.cache import default_cache_dir
from ..data import dataset_identity, prompts, shapeworld, world
from . import baselines, linear_probe as lp, zeroshot
from .stats import clopper_pearson, fit_line, predicted

__all__ = ["correct_matrix", "score", "evaluate", "run_suite", "smoothed", "er_points", "er_table",
           "per_class_accuracy", "zero_shot_classifier", "linear_probe", "memoized_classifier", "cnn_baseline",
           "effective_robustness", "REFERENCE_FILE", "reference_points", "reference_er_points", "world_classifiers",
           "class_drops", "worst_classes"]


# -- scoring ------------------------------------------------------------------------------------

def correct_matrix(topk: np.ndarray, labels: pd.DataFrame) -> np.ndarray:
    """(N, k) bool: is the j-th guess right (== label, or in the item's `correct` set)."""
    if "correct" in labels:
        return np.array([[p in set(c) for p in row] for row, c in zip(topk, labels["correct"])])
    return topk == labels["label"].to_numpy()[:, None]


def score(topk: np.ndarray, labels: pd.DataFrame) -> dict:
    """top-1 / top-5 accuracy with a 95 % Clopper-Pearson interval on top-1 (failed images, -1 rows,
    and items without a label are left out)."""
    keep = (topk[:, 0] >= 0) & (labels["label"].to_numpy() >= 0)
    hits = correct_matrix(topk[keep], labels[keep].reset_index(drop=True))
    k, n = int(hits[:, 0].sum()), int(keep.sum())
    if n == 0:
        return {"n": 0, "top1": np.nan, "top5": np.nan, "top1_low": np.nan, "top1_high": np.nan}
    lo, hi = clopper_pearson(k, n)
    return {"n": n, "top1": k / n, "top5": float(hits[:, :5].any(1).mean()), "top1_low": float(lo),
            "top1_high": float(hi)}


def evaluate(classifier, sets: dict) -> pd.DataFrame:
    """One row per set: shift, n, top1, top5, top1_low, top1_high."""
    return pd.DataFrame([{"shift": name, **score(classifier(ds), ds.labels)} for name, ds in sets.items()])


def run_suite(classifiers: dict, sets: dict, progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """classifiers {name: (kind, classify)} with kind 'baseline' or 'evaluated' -> (table: one row per
    classifier and set, predictions {(name, set): (N, 5)})."""
    rows, predictions = [], {}
    jobs = [(name, kind, classify, shift, ds) for name, (kind, classify) in classifiers.items()
            for shift, ds in sets.items()]
    for name, kind, classify, shift, ds in tqdm(jobs, desc="classifiers x sets", disable=not progress):
        top = classify(ds)
        predictions[(name, shift)] = top
        rows.append({"model": name, "kind": kind, "shift": shift, **score(top, ds.labels)})
    return pd.DataFrame(rows), predictions


def smoothed(top1, n):
    """(k + 0.5) / (n + 1): accuracies of 0 and 1 get finite logits that depend on n (a clean
    100 % on 500 images is not pinned at logit(1 - EPS), where it would dominate a fit)."""
    return (np.asarray(top1) * np.asarray(n) + 0.5) / (np.asarray(n) + 1)


def er_points(table: pd.DataFrame, pairs: dict, shift: str) -> pd.DataFrame:
    """Each classifier's (ID, shift) top-1 with intervals, for one shift (its ID set from `pairs`);
    id_fit / shift_fit are the smoothed accuracies the line is fitted on."""
    cols = ["model", "kind", "n", "top1", "top1_low", "top1_high"]
    rename = lambda prefix: (lambda c: f"{prefix}_{c}" if c.startswith("top1") or c == "n" else c)  # noqa: E731
    ident = table[table["shift"] == pairs[shift]][cols].rename(columns=rename("id"))
    moved = table[table["shift"] == shift][cols].rename(columns=rename("shift"))
    pts = ident.merge(moved, on=["model", "kind"])
    return pts.assign(id_fit=smoothed(pts["id_top1"], pts["id_n"]), shift_fit=smoothed(pts["shift_top1"], pts["shift_n"]))


def er_table(table: pd.DataFrame, pairs: dict) -> pd.DataFrame:
    """Effective robustness of every classifier on every shift, against the line fitted on the
    baselines (NaN where fewer than two baselines with different ID accuracies make a line)."""
    rows = []
    for shift in pairs:
        pts = er_points(table, pairs, shift)
        base = pts[pts["kind"] == "baseline"]
        try:
            a, b = fit_line(base["id_fit"], base["shift_fit"])
        except ValueError:
            a = b = np.nan
        pts["effective_robustness"] = pts["shift_top1"] - predicted(pts["id_fit"], a, b)
        rows.append(pts.assign(shift=shift, slope=a, intercept=b))
    return pd.concat(rows, ignore_index=True)


def per_class_accuracy(topk: np.ndarray, dataset) -> pd.Series:
    """Top-1 per class (NaN where the set has no image of it), indexed by name, or 'name (index)'
    for a name the class list repeats."""
    hit = correct_matrix(topk, dataset.labels)[:, 0]
    labels = np.where(topk[:, 0] >= 0, dataset.labels["label"].to_numpy(), -1)  # failed images do not count
    names = list(dataset.classes)
    index = [f"{c} ({k})" if names.count(c) > 1 else c for k, c in enumerate(names)]  # ImageNet's repeated names
    return pd.Series([hit[labels == k].mean() if (labels == k).any() else np.nan for k in range(len(names))],
                     index=index)


# -- classifiers --------------------------------------------------------------------------------

def _topk(scores: np.ndarray, ok: np.ndarray, k: int = 5) -> np.ndarray:
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top[~ok] = -1
    return top


def zero_shot_classifier(model, templates=("a photo of a {}.",), batch_size=None):
    """dataset -> (N, 5): zero-shot over the dataset's own classes (so ImageNet-R's 200, ObjectNet's
    mapped ImageNet classes); images and prompts through the cache."""
    template_list = prompts.templates(list(templates) if not isinstance(templates, str) else templates)

    def classify(dataset) -> np.ndarray:
        W = zeroshot.class_weights(model, prompts.class_prompts(dataset.classes, template_list))  # (C, D)
        x = model.encode_images(dataset, batch_size=batch_size, progress=False)  # (N, D)
        ok = np.isfinite(x).all(1)
        return _topk(np.nan_to_num(x) @ W.T, ok)
    classify.name = f"{model.name} zero-shot"
    return classify


def _restrict(scores: np.ndarray, trained: list[str], wanted: list[str]) -> np.ndarray:
    """Columns of a classifier trained on `trained` classes, for a set whose classes are `wanted`
    (the same list: every column, by position; a subset: by name, for lists without repeats)."""
    if list(wanted) == list(trained):
        return scores
    missing = [c for c in wanted if c not in trained]
    if missing:
        raise ValueError(f"the baseline was not trained on {missing[:5]}")
    return scores[:, [trained.index(c) for c in wanted]]


def linear_probe(model, train, val, Cs=None):
    """The CLIP paper's linear probe (lab.studies.linear_probe) on the model's (cached) features of a clean
    training set: λ = 1/C searched on `val` top-1 (the paper's 97-point grid, or only `Cs` when
    given), refit on train + val. Returns a classifier (dataset -> (N, 5)) with `.C` and `.val_top1`."""
    xt, xv = (model.encode_images(d, progress=False) for d in (train, val))
    yt, yv = train.labels["label"].to_numpy(), val.labels["label"].to_numpy()
    lambdas = lp.LAMBDAS if Cs is None else np.sort(1.0 / np.asarray(Cs, dtype=float))
    n_classes = len(train.classes)
    best, curve = lp.select_lambda(xt, yt, xv, yv, lambdas=lambdas, n_classes=n_classes)
    x, y = lp.usable(np.concatenate([xt, xv]), np.concatenate([yt, yv]))
    clf = lp.fit(x, y, 1.0 / lambdas[best])

    def classify(dataset) -> np.ndarray:
        x = model.encode_images(dataset, progress=False)
        ok = np.isfinite(x).all(1)
        scores = lp.class_scores(clf, np.nan_to_num(x), n_classes)
        scores[:, np.setdiff1d(np.arange(n_classes), clf.classes_)] = -np.inf  # classes the probe never saw
        return _topk(_restrict(scores, list(train.classes), list(dataset.classes)), ok)
    classify.name, classify.C = f"{model.name} linear probe", float(1.0 / lambdas[best])
    classify.val_top1 = float(curve.loc[curve["index"] == best, "val_score"].iloc[0])
    return classify


def memoized_classifier(name: str, parts, factory, cache=True):
    """A classifier whose predictions are kept in <cache>/robustness, keyed by `parts` (what
    identifies the classifier: weights' identity, training data, hyper-parameters) and each dataset's
    identity; `factory()` builds (trains, loads) the real classifier on the first miss only, so a
    re-run with unchanged inputs neither trains nor renders anything."""
    built = []

    def predict(dataset) -> dict:
        if not built:
            built.append(factory())
        return {"top": built[0](dataset)}

    def classify(dataset) -> np.ndarray:
        return memo.memoized("predictions", [parts, dataset_identity(dataset), list(dataset.classes)],
                             lambda: predict(dataset), cache, folder_name="robustness",
                             code=(__name__, "lab.studies.baselines"), packages=("torch", "scikit-learn"), kind="npz")["top"]
    classify.name = name
    return classify


_PIXELS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _rendered(dataset) -> np.ndarray:
    """A ShapeWorld set's images as one uint8 array, drawn once per dataset object however many
    CNN baselines classify it."""
    if dataset not in _PIXELS:
        _PIXELS[dataset] = np.stack([np.asarray(dataset.source(i)) for i in range(len(dataset))])
    return _PIXELS[dataset]


def cnn_baseline(width: int = 16, epochs: int = 5, n_train: int = 2000, seed: int = 0, cache: bool = True):
    """ShapeWorld: a small CNN trained for `epochs` on n_train clean training images (lab.studies.baselines),
    saved under the cache folder so it trains once; its predictions are cached too (loaded or trained
    on the first set not seen before). Returns a classifier (dataset -> (N, 5))."""
    return memoized_classifier(f"CNN w{width}, {epochs} epochs", ["cnn", world.VERSION, width, epochs, n_train, seed],
                               lambda: _cnn(width, epochs, n_train, seed, cache), cache)


def _cnn(width, epochs, n_train, seed, cache):
    train = shapeworld.WorldDataset("train", n_train)
    classes = list(train.classes)
    file = (Path(default_cache_dir()) / "baselines" /
            f"cnn-{world.VERSION}-shape-w{width}-e{epochs}-n{n_train}-seed{seed}.pt")  # a new world retrains
    if cache and file.exists():
        net = baselines.SmallCNN(len(classes), width)
        net.load_state_dict(torch.load(file, weights_only=True))
        net.eval()
    else:
        images = [train.source(i) for i in range(len(train))]
        net = baselines.fit_cnn(images, train.labels["label"].to_numpy(), len(classes), width, epochs, seed=seed)
        if cache:
            file.parent.mkdir(parents=True, exist_ok=True)
            torch.save(net.state_dict(), file.with_suffix(".tmp"))
            file.with_suffix(".tmp").replace(file)

    @torch.no_grad()
    def classify(dataset) -> np.ndarray:
        pixels = _rendered(dataset)  # (N, H, W, 3) uint8
        logits = np.concatenate([net(baselines.to_tensor(pixels[s:s + 256])).numpy()
                                 for s in range(0, len(pixels), 256)])
        return _topk(_restrict(logits, classes, list(dataset.classes)), np.ones(len(pixels), bool))
    return classify


# -- effective robustness -----------------------------------------------------------------------

def effective_robustness(id_acc, shift_acc, a: float, b: float):
    """Accuracy under shift above (positive) or below the baselines' line, in accuracy points."""
    return np.asarray(shift_acc) - predicted(id_acc, a, b)


# -- real data ------------------------------------------------------------------------------------

REFERENCE_FILE = Path(__file__).parent.parent / "data" / "reference_robustness.csv"


def reference_points() -> pd.DataFrame:
    """Published (ImageNet, shift) top-1 in percent, with their sources (see the CSV), to place
    real-data runs among published models."""
    return pd.read_csv(REFERENCE_FILE)


def reference_er_points(shift: str) -> pd.DataFrame:
    """Published (ImageNet, shift) points in er_points' columns (kind 'published'; shift named as in
    real_shift_sets: imagenetv2, imagenet_sketch, imagenet_r, imagenet_a, objectnet), empty if unknown."""
    ref = reference_points()
    if shift not in ref.columns:
        return pd.DataFrame()
    x, y = ref["imagenet"] / 100, ref[shift] / 100
    return pd.DataFrame({"model": ref["model"] + " (published)", "kind": "published",
                         "id_top1": x, "id_top1_low": x, "id_top1_high": x, "id_fit": x,
                         "shift_top1": y, "shift_top1_low": y, "shift_top1_high": y, "shift_fit": y})


# -- ShapeWorld's suite -------------------------------------------------------------------------

def world_classifiers(models: list, templates="shapeworld", cnn_baselines=((8, 2), (16, 4), (16, 10)),
                      linear_probes: bool = True, n_train: int = 2000, batch_size=None) -> dict:
    """The built-in study's classifiers: each CLIP zero-shot ('evaluated'), small CNNs and linear
    probes on each CLIP's features ('baseline') -> {name: (kind, classify)}, their predictions
    memoized (memoized_classifier)."""
    listed = prompts.templates(templates if isinstance(templates, str) else list(templates))
    out = {m.name: ("evaluated", memoized_classifier(m.name, ["zero-shot", m.fingerprint, listed],
                                                     lambda m=m: zero_shot_classifier(m, listed, batch_size)))
           for m in models}
    for width, epochs in cnn_baselines:
        cnn = cnn_baseline(width, epochs, n_train=n_train)
        out[cnn.name] = ("baseline", cnn)
    if linear_probes:
        train, val = shapeworld.WorldDataset("train", n_train), shapeworld.WorldDataset("val", 500)
        for m in models:
            out[f"{m.name} linear probe"] = ("baseline", memoized_classifier(
                f"{m.name} linear probe", ["linear probe", m.fingerprint, dataset_identity(train), dataset_identity(val)],
                lambda m=m: linear_probe(m, train, val)))
    return out


def _class_top1(predictions: dict, sets: dict, pairs: dict, model: str, shift: str) -> tuple[pd.Series, pd.Series]:
    """Per-class top-1 of one classifier on `shift`'s ID set and on `shift`."""
    return (per_class_accuracy(predictions[(model, pairs[shift])], sets[pairs[shift]]),
            per_class_accuracy(predictions[(model, shift)], sets[shift]))


def class_drops(predictions: dict, sets: dict, pairs: dict, model: str, top: int = 25) -> pd.DataFrame:
    """Per-class drop in top-1 from the ID set to each shift (a column per shift) for one classifier,
    the `top` classes with the largest drop or gain under any shift first."""
    drops = {}
    for shift in pairs:
        ident, moved = _class_top1(predictions, sets, pairs, model, shift)
        drops[shift] = ident - moved
    drops = pd.DataFrame(drops)
    return drops.loc[drops.abs().max(axis=1).sort_values(ascending=False).index[:top]]


def worst_classes(predictions: dict, sets: dict, pairs: dict, model: str, shift: str, k: int = 5) -> pd.DataFrame:
    """The k classes whose top-1 drops most from the ID set to `shift` for one classifier."""
    ident, moved = _class_top1(predictions, sets, pairs, model, shift)
    df = pd.DataFrame({"id_top1": ident, "shift_top1": moved}).dropna()
    return df.assign(drop=df["id_top1"] - df["shift_top1"]).sort_values("drop", ascending=False).head(k)
