"""Self-checks for the workshop's exercises: graded hints that never show the reference value.

    from lab.workshop.checks import check, catch_up, answer
    def class_embedding(prompt_emb): ...              # the learner's key step, as a function
    check("m1.ensemble", class_embedding)              # ✓ correct / ✗ a hint / ○ not attempted
    class_embedding = catch_up("m1.ensemble", class_embedding)   # continue with the reference if needed
    answer("m1.q1", "c")                               # a multiple-choice answer, checked against a hash

Every exercise is a function the learner writes. `check` calls it on fresh random inputs (a new
draw every call, several sizes), compares it with the lab's own function and, when it differs,
says what looks wrong: the type, the shape, an invariant (unit norm, rows summing to one, no NaN)
or a named common mistake (forgot to renormalise, missing logit scale, transposed matrix...); an
exercise with `keeps_inputs` also says so when the right values come from a function that changed its
input arrays in place (the caller's data would change with them).
Hints hold no numbers computed by the reference. A stub that raises NotImplementedError is
"not attempted". `catch_up` keeps the learner's attempt in `attempts[name]` and hands back the
reference function when the attempt is missing or wrong, so a notebook always runs to the end.
Multiple-choice answers are stored as salted SHA-256 hashes (`ANSWERS`), never in clear. Every
option of every question has an explanation (why it is right, or what is wrong with it), shown when
the learner picks it; `EXPLANATIONS` keys them by the option's salted hash and stores them sealed
(XOR-ed with a key derived from the question and the option, see `seal`), so reading this file
before answering shows neither the right letter nor the reasoning that would give it away.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.special import expit

from ..studies import zeroshot

__all__ = ["attempts", "results", "Exercise", "EXERCISES", "Result", "check", "catch_up", "answer_hash", "ANSWERS",
           "seal", "explanation", "EXPLANATIONS", "answer", "summary"]

attempts: dict[str, object] = {}  # name -> the learner's own function, kept aside by catch_up
results: dict[str, str] = {}  # name -> "correct" | "hint" | "not attempted", the latest of each


def _unit(x, axis=-1):
    return x / np.linalg.norm(x, axis=axis, keepdims=True)


# -- the exercises' reference steps (the lab's functions where it has one) ----------------------

def _clip_loss(image_emb, text_emb, scale):
    """The lab's trainer loss (lab.training.train.clip_loss), which takes log(scale) as the model stores it."""
    import torch

    from ..training.train import clip_loss
    with torch.no_grad():
        return float(clip_loss(torch.as_tensor(image_emb, dtype=torch.float64),
                               torch.as_tensor(text_emb, dtype=torch.float64),
                               torch.tensor(np.log(scale), dtype=torch.float64)))


def _lse(z, axis):
    m = z.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def _ce_rows(z):
    """Mean cross-entropy of each row of z against its diagonal entry (row i's right column is i)."""
    return float(np.mean(_lse(z, 1) - np.diag(z)))


def _loss_from(image_emb, text_emb, scale, unit=True):
    z = scale * (_unit(image_emb) @ _unit(text_emb).T if unit else image_emb @ text_emb.T)
    return z


def _cosine(a, b):
    return _unit(a) @ _unit(b).T  # (N, M)


def _gap(image_emb, text_emb):
    return float(np.linalg.norm(image_emb.mean(0) - text_emb.mean(0)))


def _nearest(emb, query, k):
    from ..studies.maps import nearest
    return nearest(emb, query[None], k)[0][0]


def _occlusion(score, image, patch, slip=None):
    """The reference occlusion map, or one of the two commonest mistakes: slip="no copy" (every patch
    stays hidden), "swapped" (rows and columns swapped), "offsets" (offsets in squares, not pixels)."""
    base = score(image)
    H, W = image.shape[0] // patch, image.shape[1] // patch
    drop = np.zeros((H, W))
    kept = image.copy()
    for r in range(H):
        for c in range(W):
            hidden = kept if slip == "no copy" else image.copy()
            if slip == "swapped":
                hidden[c * patch:(c + 1) * patch, r * patch:(r + 1) * patch] = 0
            elif slip == "offsets":
                hidden[r:r + patch, c:c + patch] = 0
            else:
                hidden[r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = 0
            drop[r, c] = base - score(hidden)
    return drop


def _pointing(heatmap, mask):
    from ..studies.attribution_metrics import pointing_game
    return bool(pointing_game(heatmap[None], mask[None])[0])


def _logit(p):
    from ..studies.stats import logit
    return logit(p)


def _per_class(pred, y, n_classes):
    return np.array([float(np.mean(pred[y == c] == c)) for c in range(n_classes)])


def _attack(pred_clean, pred_attacked, y, written):
    right = pred_clean == y
    return float(np.mean(pred_attacked[right] == written[right]))


def _fit_line(id_acc, shift_acc):
    from ..studies.stats import fit_line
    return np.array(fit_line(id_acc, shift_acc))


def _er(id_acc, shift_acc, a, b):
    from ..studies.robustness import effective_robustness
    return effective_robustness(id_acc, shift_acc, a, b)


def _mean_ablate(parts, ablated):
    from ..studies.decomposition import mean_ablate
    return mean_ablate(parts, ablated)


def _ablated(parts, ablated, slip):
    """A mean ablation gone wrong: slip="zero" (the parts set to 0), "raw" (no renormalising), "kept" (the
    other parts ablated), "each" (every part normalised before the sum)."""
    kept = parts.copy()
    if slip == "zero":
        kept[:, ablated] = 0
    elif slip == "kept":
        others = sorted(set(range(parts.shape[1])) - set(ablated))
        kept[:, others] = parts[:, others].mean(0)
    else:
        kept[:, ablated] = parts[:, ablated].mean(0)
    if slip == "each":
        kept = _unit(kept)
    total = kept.sum(1)
    return total if slip == "raw" else _unit(total)


# -- fresh random inputs --------------------------------------------------------------------------

def _emb(rng, n, d, scale=True):
    x = rng.normal(size=(n, d))
    return x * rng.uniform(0.2, 5.0, size=(n, 1)) if scale else _unit(x)


def _pairs(rng, b, d=16):
    """A batch of b matching (image, caption) embeddings, not unit length, and a scale (1/τ)."""
    img = _emb(rng, b, d)
    txt = (_unit(img) + rng.normal(0, 1.5, size=(b, d)) / np.sqrt(d)) * rng.uniform(0.2, 5.0, size=(b, 1))
    return img, txt, float(rng.uniform(5, 30))


def _predictions(rng, n, c):
    y = np.r_[np.arange(c), rng.integers(0, c, n - c)][rng.permutation(n)]
    pred = np.where(rng.random(n) < 0.6, y, rng.integers(0, c, n))
    return pred, y, c


def _attacked(rng, n, c=10):
    y = rng.integers(0, c, n)
    written = (y + rng.integers(1, c, n)) % c
    clean = np.where(rng.random(n) < 0.8, y, rng.integers(0, c, n))
    attacked = np.where(rng.random(n) < 0.4, written, np.where(rng.random(n) < 0.5, clean, rng.integers(0, c, n)))
    return clean, attacked, y, written


def _score_fn(rng, shape):
    w = rng.normal(size=shape)
    return lambda im: float((np.asarray(im) * w).sum())


def _parts(rng, n, k, d):
    """N images' K parts of dimension D (each part a different size, as a network's parts are) and a
    list of 1 .. K-1 part indices to ablate."""
    parts = rng.normal(size=(n, k, d)) * rng.uniform(0.05, 1.0, size=(1, k, 1)) + rng.normal(size=(1, k, d))
    ablated = sorted(int(i) for i in rng.choice(k, size=int(rng.integers(1, k)), replace=False))
    return parts, ablated


def _accs(rng, n):
    x = np.sort(rng.uniform(0.3, 0.95, n))
    return x, expit(rng.uniform(0.6, 1.1) * np.log(x / (1 - x)) - rng.uniform(0.5, 1.5) + rng.normal(0, 0.05, n))


@dataclass
class Exercise:
    name: str
    signature: str  # what the learner's function takes and returns, as shown in hints
    inputs: Callable  # rng, size -> args tuple (size: 0, 1, 2 give different shapes)
    reference: Callable
    mistakes: dict = field(default_factory=dict)  # hint -> function computing the mistaken result
    invariants: list = field(default_factory=list)  # (test(out, args) -> bool, hint when it fails)
    trials: int = 3  # random draws per check (more for functions returning one bool)
    kind: str = "array"  # "array", "float" or "bool"
    keeps_inputs: str = ""  # the hint when the right values come with an input array changed in place


def _sizes(*options):
    return lambda size: options[size % len(options)]


EXERCISES = {e.name: e for e in [
    Exercise("m0.clip_loss", "clip_loss(image_emb (B, D), text_emb (B, D), scale) -> float: the symmetric "
             "cross-entropy of the (B, B) scaled cosine matrix, row i's caption being text i",
             lambda rng, s: _pairs(rng, (4, 7, 12)[s % 3]),
             _clip_loss,
             {"only one direction: average the image→text loss (rows) and the text→image loss (columns)":
                  lambda i, t, s: _ce_rows(_loss_from(i, t, s)),
              "only the text→image direction: also take each image's row (images pick their caption)":
                  lambda i, t, s: _ce_rows(_loss_from(i, t, s).T),
              "summed the two directions: the loss is their average, (rows + columns) / 2":
                  lambda i, t, s: 2 * _clip_loss(i, t, s),
              "missing scale: multiply the cosines by `scale` (1/τ) before the cross-entropy":
                  lambda i, t, s: _clip_loss(i, t, 1.0),
              "divided by the scale: the cosines are multiplied by 1/τ, i.e. by `scale`":
                  lambda i, t, s: _clip_loss(i, t, 1.0 / s),
              "no normalisation: scale every embedding to unit length first, so the matrix holds cosines":
                  lambda i, t, s: (_ce_rows(_loss_from(i, t, s, False)) + _ce_rows(_loss_from(i, t, s, False).T)) / 2,
              "softmax over the whole matrix: each row (an image against every caption) and each column "
              "is its own softmax":
                  lambda i, t, s: float(np.mean(_lse(_loss_from(i, t, s).ravel(), 0) - np.diag(_loss_from(i, t, s)))),
              "summed over the batch: cross-entropy averages over the B pairs":
                  lambda i, t, s: len(i) * _clip_loss(i, t, s)},
             [(lambda out, args: np.isfinite(out), "NaN or inf: subtract each row's maximum before exp, "
                                                   "or use a log-sum-exp"),
              (lambda out, args: out >= -1e-9, "a cross-entropy is never negative: did you drop the minus sign "
                                               "of -log p?")],
             kind="float"),
    Exercise("m0.cosine", "cosine(a (N, D), b (M, D)) -> (N, M) cosine similarities",
             lambda rng, s: (_emb(rng, (5, 7, 3)[s % 3], 16), _emb(rng, (4, 2, 9)[s % 3], 16)),
             _cosine,
             {"forgot to normalise: a dot product is a cosine only between unit vectors": lambda a, b: a @ b.T,
              "transposed: rows should be a's items, columns b's": lambda a, b: _cosine(b, a),
              "normalised along the wrong axis: each row (item) needs unit length, not each column":
                  lambda a, b: _unit(a, 0) @ _unit(b, 0).T},
             [(lambda out, args: np.all(np.abs(out) <= 1 + 1e-6), "cosines lie in [-1, 1]; some of yours do not")]),
    Exercise("m1.ensemble", "class_embedding(prompt_emb (T, D)) -> (D,) unit-norm class embedding",
             lambda rng, s: (_emb(rng, (7, 3, 12)[s % 3], 32),),
             zeroshot.ensemble,
             {"forgot to renormalise: the mean of unit vectors is shorter than one; divide it by its norm":
                  lambda p: _unit(p).mean(0),
              "averaged before normalising: normalise each prompt first, so long prompts do not dominate":
                  lambda p: _unit(p.mean(0)),
              "no normalisation at all: normalise each prompt, average, then renormalise": lambda p: p.mean(0),
              "summed instead of averaged, without renormalising": lambda p: _unit(p).sum(0)},
             [(lambda out, args: abs(np.linalg.norm(out) - 1) < 1e-4,
               "the class embedding should have unit length (norm 1)")]),
    Exercise("m1.logits", "logits(image_emb (N, D), weights (C, D), scale) -> (N, C)",
             lambda rng, s: (_emb(rng, (6, 9, 2)[s % 3], 24, False), _emb(rng, (4, 3, 5)[s % 3], 24, False),
                             float(rng.uniform(20, 100))),
             zeroshot.logits,
             {"missing logit scale: multiply the cosines by the model's logit_scale":
                  lambda x, w, s: x @ w.T,
              "transposed matrix: one row per image, one column per class": lambda x, w, s: s * w @ x.T,
              "divided by the scale instead of multiplying": lambda x, w, s: x @ w.T / s}),
    Exercise("m1.softmax", "softmax(z (N, C)) -> (N, C) probabilities, each row summing to 1",
             lambda rng, s: ((rng.normal(size=((5, 3, 8)[s % 3], (4, 6, 3)[s % 3])) * 40 + 60).astype(np.float32),),
             zeroshot.softmax,
             {"softmax over the wrong axis: each image's row should sum to one, not each class's column":
                  lambda z: np.exp(z - z.max(0)) / np.exp(z - z.max(0)).sum(0),
              "forgot the exponential: probabilities are exp(z) / sum(exp(z))": lambda z: z / z.sum(-1, keepdims=True)},
             [(lambda out, args: np.isfinite(out).all(),
               "NaN or inf: float32 exp overflows once a logit passes about 88 (these test logits go well past it); "
               "subtract each row's maximum first"),
              (lambda out, args: np.allclose(np.sum(out, -1), 1, atol=1e-4), "each row should sum to 1")]),
    Exercise("m2.gap", "modality_gap(image_emb (N, D), text_emb (M, D)) -> float centroid distance",
             lambda rng, s: (_unit(_emb(rng, (40, 25, 60)[s % 3], 16) + 2), _unit(_emb(rng, (10, 30, 7)[s % 3], 16) - 1)),
             _gap,
             {"squared distance: take the square root (np.linalg.norm does it)":
                  lambda i, t: float(((i.mean(0) - t.mean(0)) ** 2).sum()),
              "mean of per-pair distances: subtract the two centroids (means over the rows) first":
                  lambda i, t: float(np.linalg.norm(i[:, None] - t[None], axis=-1).mean()),
              "cosine instead of distance: the gap is the Euclidean distance between the centroids":
                  lambda i, t: float(_unit(i.mean(0)) @ _unit(t.mean(0)))},
             kind="float"),
    Exercise("m2.nearest", "nearest(emb (N, D), query (D,), k) -> (k,) row indices, most similar first",
             lambda rng, s: (_emb(rng, (30, 50, 12)[s % 3], 16, False), _unit(rng.normal(size=16)), (5, 3, 8)[s % 3]),
             _nearest,
             {"sorted the wrong way: the most similar rows come first (sort -sims, or reverse)":
                  lambda e, q, k: np.argsort(e @ q)[:k],
              "similarities instead of row indices: return the positions (argsort), not the scores":
                  lambda e, q, k: np.sort(e @ q)[::-1][:k]}),
    Exercise("m3.occlusion", "occlusion_map(score, image (H, W, 3), patch) -> (H//patch, W//patch) score drops",
             lambda rng, s: (_score_fn(rng, ((16, 16, 3), (12, 8, 3), (8, 12, 3))[s % 3]),
                             rng.normal(size=((16, 16, 3), (12, 8, 3), (8, 12, 3))[s % 3]), (4, 4, 2)[s % 3]),
             _occlusion,
             {"sign flipped: a patch that helps the match should get a positive value (score before minus after)":
                  lambda f, im, p: -_occlusion(f, im, p),
              "returned the occluded scores, not the drops: subtract them from the unoccluded score":
                  lambda f, im, p: f(im) - _occlusion(f, im, p),
              "occlusion accumulates: `hidden = image` hides the squares in the image itself, so every "
              "earlier square stays hidden; take `hidden = image.copy()` inside the loop":
                  lambda f, im, p: _occlusion(f, im, p, "no copy"),
              "rows and columns swapped in the slice: square (r, c) covers pixel rows r*patch to "
              "(r+1)*patch and columns c*patch to (c+1)*patch, i.e. hidden[rows, columns]":
                  lambda f, im, p: _occlusion(f, im, p, "swapped"),
              "patch offsets wrong: square (r, c) starts at pixel (r*patch, c*patch), not at (r, c)":
                  lambda f, im, p: _occlusion(f, im, p, "offsets")}),
    Exercise("m3.pointing", "pointing_hit(heatmap (H, W), mask (H, W) bool) -> bool: is the map's peak on the object",
             lambda rng, s: (rng.random((12, 12)), rng.random((12, 12)) < 0.4),
             _pointing,
             {"used the map's minimum: the pointing game looks at its maximum":
                  lambda m, k: bool(k[np.unravel_index(np.argmin(m), m.shape)]),
              "swapped row and column: np.unravel_index(argmax, shape) gives (row, column)":
                  lambda m, k: bool(k[np.unravel_index(np.argmax(m), m.shape)[::-1]])},
             trials=40, kind="bool"),
    Exercise("m3.mean_ablate", "mean_ablate(parts (N, K, D), ablated: a list of part indices) -> (N, D) unit-norm "
             "embeddings, each ablated part replaced by its mean over the N images",
             lambda rng, s: _parts(rng, (12, 20, 9)[s % 3], (7, 5, 11)[s % 3], (8, 16, 6)[s % 3]),
             _mean_ablate,
             {"zeroed the ablated parts (or left them out of the sum): mean ablation replaces each one by its mean "
              "over the images, so its average contribution stays": lambda p, a: _ablated(p, a, "zero"),
              "forgot to renormalise: divide each image's sum of parts by its norm":
                  lambda p, a: _ablated(p, a, "raw"),
              "nothing changed: replace each ablated part by its mean over the images (axis 0); a mean over the "
              "parts (axis 1) keeps their sum, so the embedding stays as it was":
                  lambda p, a: _unit(p.sum(1)),
              "ablated the other parts: `ablated` lists the parts to replace by their mean; keep every other part "
              "as it is": lambda p, a: _ablated(p, a, "kept"),
              "normalised each part before the sum: the parts are not embeddings of their own; sum them first, "
              "then divide the sum by its norm": lambda p, a: _ablated(p, a, "each")},
             [(lambda out, args: np.isfinite(out).all(), "NaN or inf: is a norm zero, or a mean over an empty axis?"),
              (lambda out, args: np.allclose(np.linalg.norm(out, axis=-1), 1, atol=1e-4),
               "each embedding (row) should have unit length (norm 1)")],
             keeps_inputs="right values, but your function changed `parts` in place: the caller's parts are "
                          "ablated too, and the next call starts from them; work on `parts.copy()`"),
    Exercise("m4.fit_line", "fit_line(id_acc (K,), shift_acc (K,)) -> (a, b) with logit(shift) ≈ a logit(id) + b",
             lambda rng, s: _accs(rng, (6, 4, 9)[s % 3]),
             _fit_line,
             {"fitted in accuracy axes: transform both accuracies with the logit before fitting":
                  lambda x, y: np.polyfit(x, y, 1),
              "axes swapped: regress the shift accuracy on the ID accuracy, not the other way round":
                  lambda x, y: np.polyfit(_logit(y), _logit(x), 1),
              "returned (b, a): np.polyfit gives the slope first": lambda x, y: np.polyfit(_logit(x), _logit(y), 1)[::-1]}),
    Exercise("m4.er", "effective_robustness(id_acc, shift_acc, a, b) -> shift accuracy above the line, in accuracy",
             lambda rng, s: (*_accs(rng, (5, 3, 8)[s % 3]), float(rng.uniform(0.6, 1.2)), float(rng.uniform(-1.5, -0.3))),
             _er,
             {"measured in logit axes: map the line's prediction back to accuracy with expit first":
                  lambda x, y, a, b: _logit(y) - (a * _logit(x) + b),
              "sign flipped: points above the line have positive effective robustness":
                  lambda x, y, a, b: -_er(x, y, a, b),
              "forgot the logit on the ID accuracy: the line lives in logit axes":
                  lambda x, y, a, b: y - expit(a * x + b)}),
    Exercise("m5.per_class", "per_class_accuracy(pred (N,), y (N,), n_classes) -> (n_classes,) share of each "
             "true class predicted right",
             lambda rng, s: _predictions(rng, (40, 25, 60)[s % 3], (4, 3, 9)[s % 3]),
             _per_class,
             {"grouped by the predicted class (that is precision): group the images by their true class y":
                  lambda p, y, c: np.array([float(np.mean(y[p == k] == k)) if np.any(p == k) else 0.0
                                            for k in range(c)]),
              "divided by all N images: divide each class's hits by the number of images of that class":
                  lambda p, y, c: np.bincount(y[p == y], minlength=c) / len(y),
              "counts instead of shares: divide the hits by the class's number of images":
                  lambda p, y, c: np.bincount(y[p == y], minlength=c).astype(float)},
             [(lambda out, args: np.all((out >= 0) & (out <= 1)), "shares lie in [0, 1]; some of yours do not")]),
    Exercise("m5.attack", "attack_success(pred_clean, pred_attacked, y, written) -> float: of the images "
             "classified right when clean, the share predicted as the written class when attacked",
             lambda rng, s: _attacked(rng, (50, 80, 30)[s % 3]),
             _attack,
             {"counted every image: keep only the images the model got right when clean":
                  lambda pc, pa, y, w: float(np.mean(pa == w)),
              "counted any change of prediction (the flip rate, or the accuracy drop): the attack succeeds "
              "only when the prediction becomes the written class":
                  lambda pc, pa, y, w: float(np.mean(pa[pc == y] != y[pc == y])),
              "divided by all images: the share is among the images right when clean":
                  lambda pc, pa, y, w: float(np.sum((pc == y) & (pa == w)) / len(y))},
             [(lambda out, args: 0 <= out <= 1, "a share lies in [0, 1]; yours does not")],
             kind="float"),
]}


# -- checking -------------------------------------------------------------------------------------

@dataclass
class Result:
    name: str
    status: str  # "correct", "hint", "not attempted"
    message: str

    def __str__(self):
        mark = {"correct": "✓", "hint": "✗", "not attempted": "○"}[self.status]
        return f"{mark} {self.name}: {self.message}"

    def _repr_pretty_(self, p, cycle):  # IPython shows the line, not the dataclass
        p.text(str(self))

    @property
    def ok(self) -> bool:
        return self.status == "correct"


def _same(out, ref, kind: str) -> bool:
    if ref is None or out is None:
        return False
    if kind == "bool":
        return bool(out) == bool(ref)
    try:
        out, ref = np.asarray(out, dtype=float), np.asarray(ref, dtype=float)
    except (TypeError, ValueError):
        return False
    return out.shape == ref.shape and np.allclose(out, ref, rtol=1e-4, atol=1e-5, equal_nan=False)


def _copy(args):
    return tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)


def _diagnose(ex: Exercise, fn, rng) -> Result:
    """Run `fn` on fresh random inputs -> a Result (the reference's output never leaves here)."""
    outs, refs, draws, changed = [], [], [], False
    for t in range(ex.trials):
        args = ex.inputs(rng, t)
        given = _copy(args)
        try:
            out = fn(*given)
        except NotImplementedError:
            return Result(ex.name, "not attempted", "not attempted yet: replace the `raise NotImplementedError` line")
        except Exception as e:  # the learner's code failed: name the error, not ours
            return Result(ex.name, "hint", f"your function raised {type(e).__name__}: {str(e)[:120]} "
                          f"(expected {ex.signature})")
        changed = changed or any(isinstance(a, np.ndarray) and not np.array_equal(a, g, equal_nan=True)
                                 for a, g in zip(args, given))
        ref = ex.reference(*_copy(args))
        if out is None:
            return Result(ex.name, "hint", "your function returned None: did you forget `return`?")
        if ex.kind == "bool":
            if not isinstance(out, (bool, np.bool_)):
                return Result(ex.name, "hint", f"expected True or False, got {type(out).__name__}")
        elif ex.kind == "float":
            if np.ndim(out) != 0:
                return Result(ex.name, "hint", f"expected one number, got an array of shape {np.shape(out)}")
        elif isinstance(out, (str, dict)) or not hasattr(out, "__len__"):
            return Result(ex.name, "hint", f"expected an array ({ex.signature}), got {type(out).__name__}")
        outs.append(out), refs.append(ref), draws.append(args)
    for hint, mistake in ex.mistakes.items():
        expected = [mistake(*_copy(a)) for a in draws]
        if all(e is not None and _same(o, e, ex.kind) for o, e in zip(outs, expected)) and \
                not all(_same(e, r, ex.kind) for e, r in zip(expected, refs)):
            return Result(ex.name, "hint", hint)
    for out, ref, args in zip(outs, refs, draws):
        shape, want = np.shape(out), np.shape(ref)
        if ex.kind == "array" and shape != want:
            if len(want) == 2 and shape == want[::-1]:
                return Result(ex.name, "hint", f"transposed: your array has shape {shape} for inputs where "
                              f"{ex.signature} asks for the other order")
            return Result(ex.name, "hint", f"wrong shape {shape}: {ex.signature} "
                          f"(inputs: {', '.join(str(np.shape(a)) for a in args if isinstance(a, np.ndarray))})")
    for test, hint in ex.invariants:
        for o, a in zip(outs, draws):
            try:
                good = bool(test(np.asarray(o, dtype=float), a))
            except (TypeError, ValueError):
                good = False
            if not good:
                return Result(ex.name, "hint", hint)
    wrong = sum(not _same(o, r, ex.kind) for o, r in zip(outs, refs))
    if wrong:
        return Result(ex.name, "hint", f"right type and shape, but the values differ from the lab's own function "
                      f"on {wrong} of {ex.trials} random inputs; re-read the steps above ({ex.signature})")
    if changed and ex.keeps_inputs:
        return Result(ex.name, "hint", ex.keeps_inputs)
    return Result(ex.name, "correct", "correct")


def check(name: str, fn, seed: int | None = None) -> Result:
    """Check the learner's function for exercise `name` on fresh random inputs; print and return
    a Result: correct, a hint, or not attempted."""
    if name not in EXERCISES:
        raise KeyError(f"no exercise {name!r}; the exercises are {sorted(EXERCISES)}")
    ex = EXERCISES[name]
    if not callable(fn):
        result = Result(name, "hint", f"pass your function itself ({ex.signature}), not "
                                      f"a {type(fn).__name__}")
    else:
        result = _diagnose(ex, fn, np.random.default_rng(seed))
    results[name] = result.status
    print(result)
    return result


def catch_up(name: str, fn):
    """The learner's function when it passes the check, else the reference (the attempt is kept in
    `attempts[name]`), so the rest of the notebook runs either way."""
    ex = EXERCISES[name]
    attempts[name] = fn
    status = _diagnose(ex, fn, np.random.default_rng()).status if callable(fn) else "hint"
    if status == "correct":
        return fn
    print(f"↪ {name}: continuing with the reference solution; your attempt is kept in attempts[{name!r}]")
    return ex.reference


# -- multiple choice --------------------------------------------------------------------------------

def answer_hash(question: str, choice: str) -> str:
    return hashlib.sha256(f"clip-lab-workshop|{question}|{choice.strip().lower()}".encode()).hexdigest()


def _keystream(question: str, choice: str, n: int) -> bytes:
    out, k = b"", 0
    while len(out) < n:
        out += hashlib.sha256(f"clip-lab-workshop|explain|{question}|{choice.strip().lower()}|{k}".encode()).digest()
        k += 1
    return out[:n]


def seal(question: str, choice: str, text: str) -> str:
    """An option's explanation as stored in EXPLANATIONS: XOR-ed with a key derived from the question
    and the option, so the source shows no explanation (and hence no hint of the right option) in clear.
    To write or change one: EXPLANATIONS[answer_hash(q, letter)] = seal(q, letter, text)."""
    data = text.encode()
    return base64.b64encode(bytes(x ^ k for x, k in zip(data, _keystream(question, choice, len(data))))).decode()


def explanation(question: str, choice: str) -> str | None:
    """The explanation of one option (every option of every question has one), opened by choosing it."""
    blob = EXPLANATIONS.get(answer_hash(question, choice))
    if blob is None:
        return None
    data = base64.b64decode(blob)
    return bytes(x ^ k for x, k in zip(data, _keystream(question, choice, len(data)))).decode()


ANSWERS = {  # question -> answer_hash of the right choice (the choices are in the notebooks)
    "m0.q1": "0e4a8889475f9ef7327c7fa4f5b40f5c37adc4d62ae4abf947ed12e4e546b724",
    "m0.q2": "6adcd8478b8c5c85d08ffb5fa97076fd7cc76e503560477bf5e3fbd689a556a0",
    "m1.q1": "b22a900cf5cc69bde10a5ffe64db2aa9d9826126f6e75ebbe40272c1a2238236",
    "m1.q2": "20a2d503615d35cd053a84b0e825f964748f5ebf45911f9e1ee22f82c2b10341",
    "m2.q1": "2ada47289c46c2280c0ec91edd04a0bf7ab2173a83281acf156fc25496db8db6",
    "m2.q2": "c76da7d54ceeb076f423a9453d8b1b79b540022e4c984d4b86fc6669848f7b4d",
    "m3.q1": "2a24a2c0887804c1e37d80f65b9e9d95a08f05d88b2fc16672fe18eb73a235e7",
    "m3.q2": "0bf5442dd17c669fc49c232f23813922816ba8fe0b886727a52ccea001f2b6fd",
    "m4.q1": "fdf6080ffdf167e109136dcbd7f66a5a060f766c401ccd7522914c5a67bd0bbb",
    "m4.q2": "88f4a5322b5b65032f0f813b23ad8067ecaa0b410ab729a8c62c26be6376259d",
    "m5.q1": "d01d460e19ade0e7f903d2ee170350587467a6e0f373abab05b312db4619018f",
    "m5.q2": "227afa8d3e0cbc8202959a72bea342644c6d6c107826cd204c5413d4f5e4f2dc",
}

EXPLANATIONS = {  # answer_hash(question, option) -> seal(question, option, why it is right or not), every option
    "a6440c791137b03c346252d4c9f681148e709bd7ff265a7d3cae9de81e54966e":
        "wm9ZbLi3pUXOmiPYAscUbGYAvy6BfI8prz9pQAo2otYqTtrJYxH6LTG4hjWWjNKZ1AeNgZ5I1BY6XNR0Mce6jDsSLlg92J0Hn8FbL3c6uKRhXoqyg8uARiOzA9g=",
    "6cfebdfbf744c1dba3f1090d865cf74cae31ee2f0ae30cbcc00c141b2869f286":
        "vKvBFHEcvHPy5UvIT6QDscSlXGvurHE0VgQ+H1P0X/Z8W1cj553MtqEj48TR2pOaTea5MuiM3aRADWlSChtqaASwr2kovJjmeO/vlfSSTIcZf1um7igpKZADG+W1TaNX8EVKKkDVwfqfx/rWfr54rsFJUpykm0t60r95",
    "9d432bc87ae22109e7e643f43aaed49f990611468a1b9fb79031b75ae20b0424":
        "PTehLHAb/0JOGZOG7upbk8X8rpQzlMEQcY5YqtXLMgzhMTXfek5Yjfjt5Zh3AMLvbvVupRW3tzSqR7bPiGAskmHFFipEMahazQ==",
    "0e4a8889475f9ef7327c7fa4f5b40f5c37adc4d62ae4abf947ed12e4e546b724":
        "7DlJffBsFzNAn5jZ/GCIsEozg4k3qEF8vSjDYiEECvVF/QAoV0qTfquplhrMWFUSvynaAmSnU2h3KZV4Ih4K2TzT/3btXmxc4oHYFxdV0h2tFPYvjI8m06DW29PeoUL10kG37w==",
    "6adcd8478b8c5c85d08ffb5fa97076fd7cc76e503560477bf5e3fbd689a556a0":
        "QRS7HfZykgZTBDXFUVDFJb6/rFQyLs3wNbEFG2qoJlYedjyGJV7GZ3DlWVfv9gtg29/OW+gnyqJaVZWlvM3KmADznaNw/Xp5HUkced2VxBvoBCdjRGFMYxK7cfibHHMo3GtAlQcgZfrZzyW0sCk9pcegFcIAyeFbsp/7kmKZoOnytgevJuX+eYohswCikKNxjesaBJfjJceaJOgNYk52eMahaAw6i3jO5BfPelz0",
    "9aefdcc1143aca263e54d454df169e44a0a66fb9ac2a6ef76df33c4b090e2430":
        "Qy0omOeNKyfSXM6T1FAKTESl+Y6i3q9JNC6ItD+zJUuo/ZKf3Kx6pMR2W4RM7DB+Ri7ZcVgsZnzkx4M+qi61OdFHWvpADvaKRir6LuZAqduOj6V+",
    "29e08ea86ddc190ab848300acb10b6f6f8ed26b57a9061ec63d83c953185f5f5":
        "l2BT34yxQEiEjLOl+T7Nv2HQypUXvYVk3DOrBZqeVvd3/BmcAAU0u8CSo+o0yn5ciZfIqyWgcUN/djHDKyq6DSXT+041gUKsomQvwpWnadDNxAym6Fn8BewKp3l3MNZk+LvmSf43Sozw/jId3737axqH5bhcoPw31rbSLg4kzc2FHGHiVa2+5L//1k8Pz4itDMD+ZZD3UjU/JMu1h6eU2g3rCXNtaQ6yhA==",
    "71673565b7ee1e270762535a695ca9694d69175f4e0a3e5a7bca99bbc8f6d777":
        "iZLRQJuuk8r7p1tew6WCRNF3245CB5qAmMoDeHoTPS7meakrVGZlEFLDP+q7al8yCHfmE7ZxBPuNyiPtrkqrZ9VrSzjMETJPN5ICXaP54vUAbAKrghX6umvkaOInT72W09rdsPLcxLwQZv+mPZA=",
    "8d9b14967d317d79a98b5f54781584faef9d47b1764b2bc3fa8add3db8fcab4f":
        "CQgPnCiDovOAcz5cntkzPFA9PcwH5LEN2nqwkBkzQ/VM5rP8DSG4byqJxfklm5q0otrRtXsbHnnQBQbvk+VOVynKpSNlP3AlA7/WbcrgLCkyHYTPLXqs3aXtufwgthaG4YJHZiEhtarrfv9d1A==",
    "b22a900cf5cc69bde10a5ffe64db2aa9d9826126f6e75ebbe40272c1a2238236":
        "30SjGLicLUvvVHpBjNyClbqd7uGW7g89LmASwNLCz1//PI4T3ZFzdlRGk7IJuQRIZBA8WYJt3IVsAX3jhtGzhhuRIPl7EZE05do3/w9WNUL0hCWSS+6oPu0sBbCe4M0OMoiB9oUiNmc50FPdwfVBLectZSyVEv6DF0E=",
    "904a612cb7b3e787798da8b6d57aa8a24fcf1ba796316d659aac5f02a1437a9d":
        "Ef7MPiea+slfwZhZi457oKwBPtNTaxYiBoLXF795dMoRlZ374f6cR9cc4P08MOVXBn0WbaXF/NJqN3LT1MZEoABA6yZ1ykpSRla9MUcdVhHx3TMklHeJKbKX2UniGsPOE3mMtg8s",
    "12ae36842470897a7d2f680c02704166c40224c4c6372b09a27cf83d6f3d4390":
        "vqcxPC7osabbhZppkT8EGEu5nZePEzKQF3+DrWVEF8VQ3IyiEKyTaZHfWtrl7eWRIyKePkGkO3ginIS6K4Cl5fqMKtWiVMYo6o7BCHNe2+SjQMiqLitIs2V/zn1UbMcjMs4qaeO/45SSCTM21mP80g==",
    "db70938aff20c7a287e451c7c765cbfdfa48fa9470ec7dcc36c343f1e4a4f9e2":
        "ltmIz5lypj1tSrKE7kSwNDvgQ7YTJHj0s5FvLRJ/7OWVFM6GgotcTJKVlDd8JrJKLKxaXFGG7SBABB/h0Fjcnlj9vQ3XD9RuB1DDmF/Whx+55hyD4h8lWPmAL3kRdHJuATzrM8BxuA==",
    "945b2a4ae47d8d1e7310a37404b4261bbc202502186154a174732763da840597":
        "re1I2f/Xy+o5nkwCFJouiyUbTc75iP7rdJuuwL6TgJyTaqB04A080ZhTyGN/ACscVRYmouwpup7oaRrwhcLGFFqQ6KMICLVJkeLrhS73cfgZXmJDVE25tQDT690bMM7tHuUFnBaFk8S9/HNWekyyy8u1F3Hytg==",
    "20a2d503615d35cd053a84b0e825f964748f5ebf45911f9e1ee22f82c2b10341":
        "GAmQ2yESWeOoy2EAVxBjBXSo/U+vBNtssLUWXY4s8NTCJyMvzN2lpUpdZWaCN+hgCyVer1OSMNDeJm9e4kHhilFsY/HYkEQRCf65PD2my5/ytaIbJ9+PbkmUfRuejirDA25I+9a8xSvZdzlHHf5AVqOkrVkpBtikDAbyYb0olGVTqNpl/mGPN6S2C17nHhI0FIpBOvbaapRLAITtheFAWIdsSFjiYSBJL2xzVOLh6A0bnd1Ds6vDmfp4",
    "3a9283b2454cc80162a6b3cf2739c6456ffde2592ce2a0400c0f57a794575830":
        "+rumn1/Ce5sACsMHYWFxtHGuclWsvcYSErsdmSDLRJkQStY34iAJ4h8F5PIGzD0Enk9qjXxteBaXeXo3M+7Bl3iTwwqTN3stYfxfHQQSRmjYeeFY3jTGAAGEiQ==",
    "2ada47289c46c2280c0ec91edd04a0bf7ab2173a83281acf156fc25496db8db6":
        "llF3a+i9xMe2uwiiH1S4Ai/0pBwnp+kjtKNC82NqZRYyskJsFIJk082vEghcBCP9s7Es0P8fbTp+co9ceEnpzvRb5WKP0tb6nLQ2Y0meRkBuBs5maKLAeEJj5NoRITEgxygSd4Zl6lgXY5oT+YeZRF87uDB06j3TPVS3v8WyTbdCHN6xNHN2567QC6WUIXOVOBwoiCiqefxivr3G3nJ9bmKYsnrPNC33pxSa0BN/CV5RMdI=",
    "6afe37fb703063b5af76c47e9905f78e0f02097f6656e5e18eaf8fc634db24b9":
        "wjvsyH5wFF9fdNXpih7sYkch4MpX+dlgOMDQzXgMuuB7uJcrzoTVRNxV569m1F3kRQ/iRf8yUDEWdIW2bgiUKtKBK3+55zqLxaAwTdu/RRCixQGlunxdqh16SD/vjPZxEst71utT4E7ffi5SCLKpfURQqeXe9dKlSEEmB75BtkxWoP/6waWYpQtixVS9ksM=",
    "1672b73d0a20c36c5d327ffb320526b97702343c05be924cae8b245ee9890c22":
        "A2BOMCf4ZSJu7n7+D8AAcX1eLJ8sfkcSZH/Umn8SFSzH67Ow3CTq28eEyaUmCST8x8E3grQ1KAqEeWjFUCBNxyrHtAFIPLGJp3yiJnqrOz6bsqCONUM=",
    "131cdd43d4641007d519a0191c969f2ba5120c608b992cd660aefe55d75de775":
        "uQZTpN244teHW9EOTiwN/orgAyZ9QbdO6VMW5pkYWV8fytgMIN/xPvZPItMTvMhqXXrBjrbjoHJqX/Q85mhy+klc+pl7gXAr8JQv8RIXWQD3qHemQrIK9JMR1dZ0JGu/oxBj+VUKlyUM9fGzxIt1wTUSMxC/2NeTfQuctrqDWM6Pnb73y5ZzPg96QLOBKClSxFqv1MReeU+pLR4=",
    "ba70df8ae493ad766d7f288a047ce4e7c1c2ed800736234bdaae3a517e4327cf":
        "bzQaAeMjCTDqX4rNYnXc4wec2l0ilHDFGQWvFUzN3eA+Gv9CncUwVcRx69pyprVisv/rsIAHvUOvkODBdIxFu57xDxquFLcPAG6dvWyT/FSCli6kdi6ddzvKDsGdOrHg6wRygqWJ+/WNHjqu",
    "b0d48d3e756c51a99b8fd777f69b9c8ba42f3b72453bddab2f398dda344171cd":
        "OycjHuJPNwd2kRcPO22oRy2w/J6/ZC5nO1CNWbXVAlUQ5dutXLMmV3YgrJk/6nldw52Mrhe3aqPXtbHEtwwgW3EEZLhP9HHpmhj8Neduzdu2SE82CEnOOeUKCHoSNOkakC1s1CLLcXghNMBcDA==",
    "427033486b048db034ef2dab5e50103419e380ce36bc15bb94844263f7c57a61":
        "gL5+7AlRB6dQ6nfdpoq5BrkQg8mtM+TOCh8M2l1AAJeuT6PWtPpddAqQ0a/HvtrZRYmtohXCSAc48lUMAih/W1XcwJU1oPK9p5QgW6aPnNg0gTmytxOt",
    "c76da7d54ceeb076f423a9453d8b1b79b540022e4c984d4b86fc6669848f7b4d":
        "uQK0NWKxxcl7t77KsmmF/CaqYjv19u0J4e95QPIb6upjoSrzZH97egFMq5aXGscSkR6aW/cD0Y5xf2GHsKqKgvE5sHU0vCjNYgsVAsNJad5jr26yOrWEXpVkeEnTMy5vh0ZjYwKYgA8zBETIUYInbOLHdJIK+gu1Ug4Lbbs=",
    "9b096d8f9e2f4b3f401c72dcba290174e540a8aff8c89a86d7a0a69c8be81030":
        "JtE8Ir+BPQv2eWMd0+pi1LOQnr5gUiwbcO+Vj1v95KRXwA2fb++aI+Gc/9BBoJnkqbRElAr8GLbi5gDCDwG/6RYTcHq5mE09O/RutlbNBsiG0YvsbEXTptmkINzaIiWyrqcT+/R92/lmY5EP68FTt/1rZy9/18LNNBVkrePU2QZJnYZR",
    "2a24a2c0887804c1e37d80f65b9e9d95a08f05d88b2fc16672fe18eb73a235e7":
        "aefDNiZCl8kuuUzMFHAvC/GDG6F3/HnfX+UjvKlbeQWC5qDySlcIUZUp/aMUdnPfFHih05Y/TWapVNzTjn+foN7T1nnfpIlYebX1PDC8VYdnrd9GfUPfgi4yHEfsLX8wvLVAH01VWeo8XBUj/YNSn+0nT0kYz5pRZftVtR6gB+arQA==",
    "5b33b4ac4212144500446f4693cf404ce15e0438782b70b5de941aa51f4e84c6":
        "Rs5G+IGhNlv1mIzvP0zqgLkz2eganek9WkENakcUPQLzZs27lmeO2I1/ourKLCsCb3T5I9gJaLX58jWl",
    "78f300d9f38fb21fcc2b118babd015c60b80cfe3e074e7120e54ae72c6decc8d":
        "A9LdqsPog46arN3ThMuQpTQfnUx96qMl4SUj+OXPOpGvtvxgWUma3xvZnz3nFjd6YoklTgW0srk0eBm62D2UpnvMuAP/ijXMXPm1tDu+4j+QxII=",
    "639a4721aeeee078c195553ecf6c46debccdbc884ee84f1f79d39df73fa5a3f3":
        "0LxwipSa6N3TEFD6F/NTkg+el250MUIezY0+d7WZOy6r3UzwDpX4pPC08vNgMUrBykEXCQjusp+fk4yb1IZ65+xpdWzCWA16DowVWmuImT9iLZZAbSPB3jb+gFZCkXLSXAdVGUyJGxEFzhlQ+wTW7Ohw",
    "03ad8587a5dc76ba3443e3d7fab02b3457c423c3921fc671f0d392dcac77d2cc":
        "X4pWeC75k+IQEihayZt/ywAYJuruXPcd/2pgujfFCzJ05ssQUOLytbcVuljx0M3RCWQ4ZIKHyJZMKDRIQUPpyKEJUJB80edYQur9A60=",
    "0bf5442dd17c669fc49c232f23813922816ba8fe0b886727a52ccea001f2b6fd":
        "cwlmBo8SzgodFw/lXEVsI3lDKseIADitAUVGdJaqpgoR17xUA8/Q2u1BHGYS2gGrWDgvYIuVZs5QwhY+42D/BXhTIuWs2B/TqPjAI3u0y8Rg8qKu1dQrePHMWR5ee4nRGLCAQQK2h3HhH3Nr5BjMrXJ/37G5c7RxWyfVyGUdU7poqzfG2GnDPJiAIkFKqMRdVd0uHA==",
    "28265bd8ceb117531a3f1c46ef6a2983119554585e00f1ddcbc4fa8ce565b98a":
        "vg90rHneZ/qRk4gu+r1x1xKhi00Z4aOBeBwkysj5+UYDQT0UC73cIz4FM2CkcOfyHw9CtjghvSTRafEKQREuq6ubFbBQ+Y9lbNApHVZWgtnWlSOgyBSHozsQr8S1JgVXsem4CQv/pOVwo/FFfvvriCM9fwM0TAjm7W2GFtZQmTQvwEFBJOS/UJ4aIEO9R+FFS+Ni2uhlKBqvAwJ2SKgJtis1QQ+l3D0U0bZff2Yl2UcpjE17",
    "e99b9d257542a4d68027a37662aecea242cbd08182ac0eb75ecdaa1c0acbd6d0":
        "SMYQS9/DfLRDaqyRNrhO+38YtAeK8rK4UlABJjXcq33jgFAWxdP1u1SAI6GeBsV6tBqbpZZyHP5Jted1cbzmiFvsJY4xliNzijlyKDSidWvwGbVH",
    "efd9c7fbf82ce92ebb98874b513cf2c2bee93c0f0b139b03e7a5813e7aa3edcf":
        "/vVrGRtyqABA40D4pXcNHTZ1L9NiAqnTQreCESJrHBT2P4jnnId0tuinx++NrbilHoH9AqAIbs8rOvJKTI3TPGs7qT8gj68/JIqqvVqygiLP3gcTINTAvAu1O8xt9KbWlQ0=",
    "ded90f72b4b186bb0f710deffb7545b060cca6af7c16b7983b0d82e697bb5c7b":
        "J0LYEBK+iPQmxA1QLTrUPT5h5XMsfaQgabo3MgLmK29A4pCOqCKZgp/6YMchJrT2R1FZ9hMjOqWvbH1PImX5UQMZg0uac25KIAyaxMjlZrHH+HgyrWAxSDt55eKnUqWYOfhGUJezu8yhv83/asu1DNd8a4Roi73FMd1d0YrqK24/vTMmlq0/XQQ53NvmzuFkeIl1F6Udd7X/tkc=",
    "fdf6080ffdf167e109136dcbd7f66a5a060f766c401ccd7522914c5a67bd0bbb":
        "bVQ6MzvkM5Dds3xDksKcwZnOIIv2hWpzBbOc2rfh0WGwzsuyZHakI2/MEexuz/22g55tinbAvL39iEQvgwOywuy4wO2V+0hAE03HwPLdoUmmTWv4U1B4euReMeNI7fQIp4uKYaTYleYj+oxSGJtyFCxSrh+A8DF86zlM9wECVK0WInnYATzd",
    "88f4a5322b5b65032f0f813b23ad8067ecaa0b410ab729a8c62c26be6376259d":
        "/WpDAOraNMyQ8KPf0NKxBz+5VrtFCR1l+PkTCazQsLClLF5FWBmeAEvcbi4uS6DC9/+V1fwNxCsL1Z0GW2WXLTYiMMYtzDzeUu7aCQuU6bAlZu9PjPwEBTJtcf0EU7eSXsz4XqveyI/NMrPo4LXPnDfOkcgHp5fWWNBZYrHbcWqChI/f6ve3Fs3DtRubUmYGlb0GxmT2+U41S5L1jpc9i8U=",
    "f3014d0bde9ef2f56311e228beb7cc387233b0ce4f2124c75240e7bf689b3d27":
        "xZUjo4+czb0hN6SDLiqcBpYdZDZdOWwOzq2UXoPpPxsTb+oDSnJuAY8rKrbQ0DXjvQ4HmS/tBTVvKsIp3mCzRZI1aftOGEjcQrg=",
    "4e6fcfb490e03dd860bddc2be5b89f66eae9a261d0ddbc2051c292bf217fe548":
        "uo+mVCKi4u5kd90tqG19eBpceOW2xjcZkYXFc9Nu2vZSbYLteUv4N+ZSR6EBKF7n71ZkETD8RsTqBnN6rkjcUuoi1aLbavpFHLmKF9v1QMeJc0vgTWv0qNa2mmVMow==",
    "5f01f193ef5dfa49deba685fa3ef10e6919802dd9965465cf1443c41eab04b81":
        "sUBwSkEsExsqAiYhIGyVRhvyN+gAu0a3uZFlKG95AGp89Utbey1QU4CnklJ/5CDkJIPd3MdmlaJ1ZtYMssk/8SaP93yaGoEoEboZKUF06o90pp094A==",
    "014901a2136424ccf7709fe4414e245d087b80c6b13f062c82251ca8805089b4":
        "vWnu3wCFIkUvY5lt5HyKJXnrKOpiLSKYZ2kV8lWeRWZvqDsgUvqJ1CMYHN/n/3DZvneNPrOO9BwgNo2USs3P0E1l4a2HKqiGTlKTO+c=",
    "d01d460e19ade0e7f903d2ee170350587467a6e0f373abab05b312db4619018f":
        "YeLAZx+VOBXftckQJ3xkyIkP4Uljzb+fxfGJtx+kVHvk9r7bWyXiZ1Wzy2YowF/cFR77npKpE0c5A1LUmfGTfaTWxvDVBzdlPvhinOiEWvRTrwGEbStKWNZS2ct1hcgrhdh77XCsfJfYtLy4t7rAJs2rP0L1bexfuRCusr6ExVrNuMrWGI01",
    "b1f761707547c070531db6fb24787902c050dcd77b90b3a9038c3310b7288443":
        "xcAKdLcRNWBc3aIY8760hl9tqninn+zmbioX24ix7LMdmqmzslPIoT9jMMHlQnh8kbaac5l/jlJKFj/5l3+AmB+OvtLykbb993dCXBIInXZ6+c24UBd0u9G1/1gZxT4OCyOzKEU/TJmW",
    "590730097586e19c1f0ef30c2094dbf13a218ca7ebcb602835aab408246f42d9":
        "+5bvXrF/wZoOOgLWO12mFPWVdds7pcN4J6QanEjhIdNT6pALlAvUAQNAZx/EQwHpEJDbmoYUIKmvoNpzW/FyNkKUGk6lIbnvzb13tUiz76mNJ7S+aeEqGgHDlbFKGqaXCAqz80+tL2aLtS01ygZQzFZdK0EI2cQB/OKDFgqJeAa+5TEq5HUE9g==",
    "ba5c236dee7ee3cefb69b81dfe88ebced60a38471057fe4445d8a0f3e4243483":
        "1JQgICrdHqpg+naGqWl+4eY16RMQm1Ebb3XH5sFwDTqgORJHAy5QR2EveZBzxVE317kmir5Zx734nDFjT2yJm6RkuwfGBATQ2O6/me9b+6LC4o64J0DUW7jVp8COfQM=",
    "d2d232330f52eee715ba37d6d8dcf177ce40bf59762d04e5869d2150e9dee02d":
        "PfAHJP0V7ii0Qa3tQNv/TKptRENHEvU6W0fRPsQ93x0HqV0XDXXzqzdJTumB+mK1bK6j1D88KwcNVglVldHaHmUzZYKKk5v1Mrm8JtHwCY6VZXeqGZNxQIAyj3BE2DrNC7OagxWcIj+JQBJS1YbxF4HOEm1utg==",
    "227afa8d3e0cbc8202959a72bea342644c6d6c107826cd204c5413d4f5e4f2dc":
        "yYK94QTDznx16FO8Hp7O+1gj5RwJ7nUdiJN7SiqDpWJRVJsA9OICWzj+ROwoXGuNcR6x/ulK4/tXIhgZeSg8Mx4hdYWu6P4wm/jUOk5KK2A5X0oRhmhGKJwRlSx8FPyxczsQUGEQMTOxNDK4PKV5zh5W9Egcps7LBYbFKqVU/SoD3b+Hi2hZJC3Ga8UYJCxCTgKqplHo+SwTDIN8QABK6BkrCZOK5RGBqA4Z1qYXh5BuqFMT+5Wj3MZCd3zXhMXdLoaiq1bvLuv52bIn1+0=",
    "ffda8a8c0b7e6f9e127296b9cf114fadd1172008311b90d3573d0a70715b8e06":
        "jorsOYU008RXDhzf+QKUNVn4uQX4OhHhgVKIpn00Lta0+R8AQ8zbghDKFQwHTQ2ahdMJe7T8iPWVcAZyQiqq8+ZCvbLvAwuQc+zt",
}


def answer(question: str, choice: str) -> Result:
    """Check a multiple-choice answer ("a", "b", ...) against its stored hash; print and return a Result
    that explains the chosen option (why it is right, or what is wrong with it)."""
    if question not in ANSWERS:
        raise KeyError(f"no question {question!r}; the questions are {sorted(ANSWERS)}")
    choice = str(choice or "").strip().lower()
    if not choice:
        result = Result(question, "not attempted", "not attempted yet: set your answer to one of the letters")
    else:
        why = explanation(question, choice)
        if answer_hash(question, choice) == ANSWERS[question]:
            result = Result(question, "correct", f"correct. {why}" if why else "correct")
        elif why is None:
            result = Result(question, "hint", f"{choice!r} is not one of the options: answer with a letter")
        else:
            result = Result(question, "hint", f"{choice!r} is not it. {why} Try another option.")
    results[question] = result.status
    print(result)
    return result


def summary() -> str:
    """One line per exercise and question seen in this session, for the end of a module."""
    lines = [f"{name}: {status}" for name, status in results.items()]
    text = "\n".join(lines) or "no checks run yet"
    print(text)
    return text
