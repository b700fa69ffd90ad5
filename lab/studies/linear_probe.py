"""Linear probes and few-shot probes on frozen embeddings, following the CLIP paper (§3.2, App. A.3).

    from lab.studies import linear_probe as lp
    clf = lp.fit(X, y, C=0.316)                           # == sklearn LogisticRegression(C=C, max_iter=1000)
    result = lp.probe(x_train, y_train, x_val, y_val, x_test, y_test)   # λ search on val, refit, test
    result.top1, result.top5, result.mean_per_class_recall, result.lam, result.curve
    idx = lp.k_shot_indices(y_train, k=4, seed=0)        # exactly 4 per class
    curve = lp.few_shot(x_train, y_train, x_val, y_val, x_test, y_test, ks=(1, 2, 4, 8, 16), seeds=(0, 1, 2))
    lp.effective_shots(curve, zero_shot_top1)             # the k where few-shot meets zero-shot (log k)

The protocol: scikit-learn's L-BFGS logistic regression, max_iter=1000, on the (cached, L2-normalised)
embeddings. The L2 strength λ (C = 1/λ) lives on a grid of 97 log-spaced values in [1e-6, 1e6]
(8 per decade); the paper's parametric binary search scores 7 points (1e-6, 1e-4, ..., 1e6) on a
validation split, then halves the step around the best point (16 -> 8 -> 4 -> 2 -> 1 grid steps),
scoring at most 15 points in all. Ties go to the larger λ (the simpler model). The chosen λ is refit
on train + val and scored on test. A choice at the grid's edge warns: the best λ may lie beyond it.
Fits run with single-threaded BLAS (lab.threads.small_work): on these small problems threads cost more than
they give, and they fight other processes on a shared machine.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import threads

__all__ = ["LAMBDAS", "START_STEP", "MAX_ITER", "fit", "class_scores", "metrics", "search", "ProbeResult", "usable",
           "select_lambda", "probe", "k_shot_indices", "few_shot", "effective_shots"]

LAMBDAS = np.logspace(-6, 6, 97)  # the paper's grid: 8 steps per decade
START_STEP = 16  # 7 starting points: every second decade
MAX_ITER = 1000


def fit(X: np.ndarray, y: np.ndarray, C: float = 1.0, random_state: int = 0):
    """scikit-learn's LogisticRegression(C=C, max_iter=1000) (L-BFGS, multinomial) fitted on X, y."""
    from sklearn.linear_model import LogisticRegression
    with threads.small_work():
        return LogisticRegression(C=C, max_iter=MAX_ITER, random_state=random_state).fit(X, y)


def class_scores(clf, X: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, n_classes) probabilities; classes the probe never saw get 0 (never predicted first)."""
    out = np.zeros((len(X), n_classes))
    with threads.small_work():
        out[:, clf.classes_] = clf.predict_proba(X)
    return out


def metrics(scores: np.ndarray, y: np.ndarray) -> dict:
    """top-1, top-5 and mean per-class recall of (N, C) scores against labels y (N,). Ties in the
    scores go to the lower class index."""
    y = np.asarray(y)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :5]  # (N, 5)
    hit1 = top[:, 0] == y
    recalls = [hit1[y == c].mean() for c in np.unique(y)]
    return {"n": len(y), "top1": float(hit1.mean()), "top5": float((top == y[:, None]).any(1).mean()),
            "mean_per_class_recall": float(np.mean(recalls))}


def search(score_at, n: int = len(LAMBDAS), start_step: int = START_STEP) -> tuple[int, dict]:
    """The paper's parametric binary search over grid indices 0..n-1: score_at(index) -> validation
    score (higher is better). Returns (best index, {index: score} of every visited point).
    Starts at every `start_step`-th index, then scores best ± step for step = start_step/2, ..., 1."""
    scores: dict[int, float] = {}

    def visit(i):
        if 0 <= i < n and i not in scores:
            scores[i] = float(score_at(i))

    def best():  # highest score; ties to the larger index (larger λ, the simpler model)
        return max(scores, key=lambda i: (scores[i], i))

    for i in range(0, n, start_step):
        visit(i)
    step = start_step // 2
    while step >= 1:
        b = best()
        visit(b - step)
        visit(b + step)
        step //= 2
    return best(), scores


@dataclass
class ProbeResult:
    """A probe chosen on validation and refit on train + val. `curve`: validation score of every
    λ the search visited (lam, C, val_score); `classifier`: the refit scikit-learn model."""
    lam: float
    C: float
    index: int
    val_score: float
    top1: float
    top5: float
    mean_per_class_recall: float
    n_test: int
    curve: pd.DataFrame
    classifier: object = field(repr=False, default=None)
    at_edge: bool = False

    def summary(self) -> dict:
        return {"lambda": self.lam, "C": self.C, "val_score": self.val_score, "top1": self.top1,
                "top5": self.top5, "mean_per_class_recall": self.mean_per_class_recall, "n_test": self.n_test,
                "at_edge": self.at_edge}


def usable(X, y):
    """Rows with a finite embedding and a label >= 0 -> (X, y)."""
    X, y = np.asarray(X), np.asarray(y)
    keep = np.isfinite(X).all(1) & (y >= 0)  # failed images (NaN rows) and unlabelled items are left out
    return X[keep], y[keep]


def select_lambda(x_train, y_train, x_val, y_val, metric: str = "top1", lambdas=LAMBDAS,
                  n_classes: int | None = None) -> tuple[int, pd.DataFrame]:
    """Run the search with probes fitted on train and scored on val -> (chosen index, curve)."""
    x_train, y_train = usable(x_train, y_train)
    x_val, y_val = usable(x_val, y_val)
    C_all = int(n_classes or max(y_train.max(), y_val.max()) + 1)
    if len(np.unique(y_train)) < 2:
        raise ValueError("a probe needs training items of at least two classes")
    lambdas = np.asarray(lambdas)

    def score_at(i):
        clf = fit(x_train, y_train, 1.0 / lambdas[i])
        return metrics(class_scores(clf, x_val, C_all), y_val)[metric]
    step = START_STEP if len(lambdas) == len(LAMBDAS) else max(1, (len(lambdas) - 1) // 6)
    best, visited = search(score_at, len(lambdas), step)
    curve = pd.DataFrame({"index": list(visited), "lambda": lambdas[list(visited)],
                          "val_score": list(visited.values())}).sort_values("index").reset_index(drop=True)
    curve["C"] = 1.0 / curve["lambda"]
    return best, curve


def probe(x_train, y_train, x_val, y_val, x_test, y_test, metric: str = "top1", lambdas=LAMBDAS,
          n_classes: int | None = None, name: str = "probe") -> ProbeResult:
    """The full protocol: λ search on val, refit on train + val with the chosen λ, score on test."""
    lambdas = np.asarray(lambdas)
    x_test, y_test = usable(x_test, y_test)
    n_classes = int(n_classes or max(np.max(y_train), np.max(y_val), y_test.max()) + 1)
    best, curve = select_lambda(x_train, y_train, x_val, y_val, metric, lambdas, n_classes)
    at_edge = best in (0, len(lambdas) - 1)
    if at_edge:
        warnings.warn(f"{name}: the chosen λ={lambdas[best]:.3g} sits at the edge of the grid "
                      f"[{lambdas[0]:.0e}, {lambdas[-1]:.0e}]; the best value may lie beyond it", stacklevel=2)
    xa, ya = usable(np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val]))
    clf = fit(xa, ya, 1.0 / lambdas[best])
    m = metrics(class_scores(clf, x_test, n_classes), y_test)
    return ProbeResult(lam=float(lambdas[best]), C=float(1 / lambdas[best]), index=int(best),
                       val_score=float(curve.loc[curve["index"] == best, "val_score"].iloc[0]),
                       top1=m["top1"], top5=m["top5"], mean_per_class_recall=m["mean_per_class_recall"],
                       n_test=m["n"], curve=curve, classifier=clf, at_edge=at_edge)


# -- few-shot -----------------------------------------------------------------------------------

def k_shot_indices(y, k: int, seed: int = 0, classes=None) -> np.ndarray:
    """Exactly k items of every class (all classes present in y, or `classes`): walk a seeded
    permutation and keep the first k of each class. Raises when a class has fewer than k."""
    y = np.asarray(y)
    classes = np.unique(y[y >= 0]) if classes is None else np.asarray(classes)
    counts = {c: int((y == c).sum()) for c in classes}
    short = {int(c): n for c, n in counts.items() if n < k}
    if short:
        raise ValueError(f"{k}-shot needs {k} items of every class; classes {sorted(short)} have only "
                         f"{sorted(short.values())}: give more training items or a smaller k")
    taken = {c: 0 for c in classes}
    out = []
    for i in np.random.default_rng(seed).permutation(len(y)):
        c = y[i]
        if c in taken and taken[c] < k:
            taken[c] += 1
            out.append(i)
    return np.sort(np.array(out, dtype=int))


def few_shot(x_train, y_train, x_val, y_val, x_test, y_test, ks=(1, 2, 4, 8, 16), seeds=(0, 1, 2),
             metric: str = "top1", progress: bool = False) -> pd.DataFrame:
    """k-shot probes: for every k and seed, exactly k training items per class; λ searched on the
    validation split (as in the paper: a held-out split larger than k shots, so small-k numbers are
    optimistic), the probe fitted on the k-shot items alone (refitting with val would swamp them).
    One row per (k, seed): k, seed, lambda, n, top1, top5, mean_per_class_recall."""
    from tqdm.auto import tqdm
    x_train, y_train = usable(x_train, y_train)
    x_test, y_test = usable(x_test, y_test)
    x_val, y_val = usable(x_val, y_val)
    n_classes = int(max(y_train.max(), y_val.max(), y_test.max()) + 1)
    rows = []
    for k, seed in tqdm([(k, s) for k in ks for s in seeds], desc="few-shot", disable=not progress):
        idx = k_shot_indices(y_train, k, seed)
        xs, ys = x_train[idx], y_train[idx]
        best, _ = select_lambda(xs, ys, x_val, y_val, metric, n_classes=n_classes)
        clf = fit(xs, ys, 1.0 / LAMBDAS[best])
        rows.append({"k": k, "seed": seed, "lambda": float(LAMBDAS[best]),
                     **metrics(class_scores(clf, x_test, n_classes), y_test)})
    return pd.DataFrame(rows)


def effective_shots(curve: pd.DataFrame, zero_shot: float, metric: str = "top1") -> dict:
    """The number of labelled shots per class at which the few-shot probe (mean over seeds) matches
    `zero_shot`, interpolated linearly in log k between the measured ks (Fig. 7 of the paper).
    -> {"effective_shots": float, "bound": ""}; outside the measured range the value is the
    range's end and bound is "<" (zero-shot below the 1-shot probe) or ">" (above the largest k)."""
    mean = curve.groupby("k")[metric].mean().sort_index()
    ks, acc = mean.index.to_numpy(float), mean.to_numpy()
    if zero_shot <= acc[0]:
        return {"effective_shots": float(ks[0]), "bound": "<" if zero_shot < acc[0] else ""}
    for j in range(1, len(ks)):
        if acc[j] >= zero_shot:  # the first k whose probe reaches zero-shot
            t = (zero_shot - acc[j - 1]) / (acc[j] - acc[j - 1])
            return {"effective_shots": float(np.exp2(np.log2(ks[j - 1]) + t * (np.log2(ks[j]) - np.log2(ks[j - 1])))),
                    "bound": ""}
    return {"effective_shots": float(ks[-1]), "bound": ">"}
