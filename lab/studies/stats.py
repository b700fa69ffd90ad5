"""Intervals and fits the studies share: exact (Clopper-Pearson) and Wilson intervals for a
proportion, and the logit-space line through baseline accuracies that effective robustness is
measured from, with its bootstrap band.

    lo, hi = clopper_pearson(k, n)                     # exact binomial 95 % interval
    lo, hi = wilson_interval(p, n)                     # Wilson score interval of a proportion
    a, b = fit_line(id_acc, shift_acc)                 # logit(shift) = a logit(ID) + b
    predicted(id_acc, a, b); bootstrap_band(id_acc, shift_acc, grid)
"""
from __future__ import annotations

import numpy as np
from scipy.special import betaincinv, expit, logit as _logit  # not scipy.stats: 0.5 s to import

__all__ = ["EPS", "clopper_pearson", "wilson_interval", "logit", "fit_line", "predicted", "bootstrap_band"]

EPS = 1e-4  # accuracies are clipped to [EPS, 1 - EPS] before the logit


def clopper_pearson(k, n, alpha: float = 0.05):
    """Exact binomial interval for k successes in n trials -> (low, high)."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):  # the k == 0 / k == n ends are replaced below
        lo = np.where(k > 0, betaincinv(k, n - k + 1, alpha / 2), 0.0)  # the beta distribution's quantiles
        hi = np.where(k < n, betaincinv(k + 1, n - k, 1 - alpha / 2), 1.0)
    return lo, hi


def logit(p):
    return _logit(np.clip(p, EPS, 1 - EPS))


def fit_line(id_acc, shift_acc) -> tuple[float, float]:
    """Least squares logit(shift) = a * logit(ID) + b over baseline points -> (a, b)."""
    x, y = logit(np.asarray(id_acc)), logit(np.asarray(shift_acc))
    if len(x) < 2 or np.ptp(x) == 0:
        raise ValueError("the baseline line needs at least two baselines with different ID accuracies")
    a, b = np.polyfit(x, y, 1)
    return float(a), float(b)


def predicted(id_acc, a: float, b: float):
    """Shift accuracy the baseline line predicts for an ID accuracy."""
    return expit(a * logit(np.asarray(id_acc)) + b)


def bootstrap_band(id_acc, shift_acc, grid, n_boot: int = 500, seed: int = 0, level: float = 0.95):
    """Pointwise band of the fitted line on `grid` (ID accuracies), resampling baselines -> (low, high)."""
    rng = np.random.default_rng(seed)
    x, y = np.asarray(id_acc), np.asarray(shift_acc)
    lines = []
    for _ in range(n_boot):
        i = rng.integers(0, len(x), len(x))
        if np.ptp(x[i]) == 0:
            continue
        lines.append(predicted(grid, *fit_line(x[i], y[i])))
    lines = np.array(lines)
    q = (1 - level) / 2
    return np.quantile(lines, q, axis=0), np.quantile(lines, 1 - q, axis=0)


def wilson_interval(p, n, z: float = 1.96):
    """95 % Wilson score interval of a proportion p measured on n items -> (low, high) arrays."""
    p, n = np.asarray(p, dtype=float), np.asarray(n, dtype=float)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half
