"""Self-checks for the workshop's exercises: graded hints that never show the reference value.

    from lab.workshop.checks import check, catch_up, answer
    def class_embedding(prompt_emb): ...              # the learner's key step, as a function
    check("m1.ensemble", class_embedding)              # ✓ correct / ✗ a hint / ○ not attempted
    class_embedding = catch_up("m1.ensemble", class_embedding)   # continue with the reference if needed
    answer("m1.q1", "b")                               # a multiple-choice answer, checked against a hash

Every exercise is a function the learner writes. `check` calls it on fresh random inputs (a new
draw every call, several sizes), compares it with the lab's own function and, when it differs,
says what looks wrong: the type, the shape, an invariant (unit norm, rows summing to one, no NaN)
or a named common mistake (forgot to renormalise, missing logit scale, transposed matrix...).
Hints hold no numbers computed by the reference. A stub that raises NotImplementedError is
"not attempted". `catch_up` keeps the learner's attempt in `attempts[name]` and hands back the
reference function when the attempt is missing or wrong, so a notebook always runs to the end.
Multiple-choice answers are stored as salted SHA-256 hashes (`ANSWERS`), never in clear.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.special import expit

from ..studies import zeroshot

__all__ = ["attempts", "results", "Exercise", "EXERCISES", "Result", "check", "catch_up", "answer_hash", "ANSWERS",
           "answer", "summary"]

attempts: dict[str, object] = {}  # name -> the learner's own function, kept aside by catch_up
results: dict[str, str] = {}  # name -> "correct" | "hint" | "not attempted", the latest of each


def _unit(x, axis=-1):
    return x / np.linalg.norm(x, axis=axis, keepdims=True)


# -- the exercises' reference steps (the lab's functions where it has one) ----------------------

def _counts(labels, n_classes):
    return np.bincount(labels, minlength=n_classes)


def _cosine(a, b):
    return _unit(a) @ _unit(b).T  # (N, M)


def _gap(image_emb, text_emb):
    return float(np.linalg.norm(image_emb.mean(0) - text_emb.mean(0)))


def _nearest(emb, query, k):
    from ..studies.maps import nearest
    return nearest(emb, query[None], k)[0][0]


def _occlusion(score, image, patch):
    base = score(image)
    H, W = image.shape[0] // patch, image.shape[1] // patch
    drop = np.zeros((H, W))
    for r in range(H):
        for c in range(W):
            hidden = image.copy()
            hidden[r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = 0
            drop[r, c] = base - score(hidden)
    return drop


def _minmax(m):
    span = m.max() - m.min()
    return (m - m.min()) / span if span > 0 else np.zeros_like(m, dtype=float)


def _pointing(heatmap, mask):
    from ..studies.attribution_metrics import pointing_game
    return bool(pointing_game(heatmap[None], mask[None])[0])


def _logit(p):
    from ..studies.stats import logit
    return logit(p)


def _fit_line(id_acc, shift_acc):
    from ..studies.stats import fit_line
    return np.array(fit_line(id_acc, shift_acc))


def _er(id_acc, shift_acc, a, b):
    from ..studies.robustness import effective_robustness
    return effective_robustness(id_acc, shift_acc, a, b)


# -- fresh random inputs --------------------------------------------------------------------------

def _emb(rng, n, d, scale=True):
    x = rng.normal(size=(n, d))
    return x * rng.uniform(0.2, 5.0, size=(n, 1)) if scale else _unit(x)


def _score_fn(rng, shape):
    w = rng.normal(size=shape)
    return lambda im: float((np.asarray(im) * w).sum())


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


def _sizes(*options):
    return lambda size: options[size % len(options)]


EXERCISES = {e.name: e for e in [
    Exercise("m0.counts", "class_counts(labels (N,) ints, n_classes) -> (n_classes,) counts",
             lambda rng, s: (rng.integers(0, (10, 6, 4)[s % 3] - 1, size=(50, 200, 31)[s % 3]), (10, 6, 4)[s % 3]),
             _counts,
             {"fractions instead of counts: return how many images each class has, not their share":
                  lambda y, c: np.bincount(y, minlength=c) / len(y),
              "a class with no images is missing: give np.bincount a minlength": lambda y, c: np.bincount(y)}),
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
               "NaN or inf: exp overflows for logits near 100; subtract each row's maximum first"),
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
                  lambda f, im, p: f(im) - _occlusion(f, im, p)}),
    Exercise("m3.pointing", "pointing_hit(heatmap (H, W), mask (H, W) bool) -> bool: is the map's peak on the object",
             lambda rng, s: (rng.random((12, 12)), rng.random((12, 12)) < 0.4),
             _pointing,
             {"used the map's minimum: the pointing game looks at its maximum":
                  lambda m, k: bool(k[np.unravel_index(np.argmin(m), m.shape)]),
              "swapped row and column: np.unravel_index(argmax, shape) gives (row, column)":
                  lambda m, k: bool(k[np.unravel_index(np.argmax(m), m.shape)[::-1]])},
             trials=40, kind="bool"),
    Exercise("m3.normalize", "normalize_map(m (H, W)) -> (H, W) scaled to [0, 1] (zeros for a constant map)",
             lambda rng, s: (np.full((5, 5), 3.0),) if s == 2 else (rng.normal(size=(6 + s, 7)) * 3 + 1,),
             _minmax,
             {"divided by the maximum only: subtract the minimum first": lambda m: m / m.max(),
              "subtracted the minimum but did not divide by the range": lambda m: m - m.min()},
             [(lambda out, args: np.isfinite(out).all(), "a constant map gives 0/0: return zeros when max == min")]),
    Exercise("m4.logit", "logit(p array) -> log(p / (1 - p)) with p clipped to [1e-4, 1 - 1e-4]",
             lambda rng, s: (np.r_[rng.uniform(0.01, 0.99, (5, 9, 3)[s % 3]), 0.0, 1.0][rng.permutation((7, 11, 5)[s % 3])],),
             _logit,
             {"log instead of logit: the logit is log(p / (1 - p))": lambda p: np.log(np.clip(p, 1e-4, 1 - 1e-4)),
              "base-10 logarithm: use the natural log (np.log)":
                  lambda p: np.log10(np.clip(p, 1e-4, 1 - 1e-4) / (1 - np.clip(p, 1e-4, 1 - 1e-4)))},
             [(lambda out, args: np.isfinite(out).all(),
               "infinite values: an accuracy of 0 or 1 has no logit; clip p to [1e-4, 1 - 1e-4] first")]),
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
    outs, refs, draws = [], [], []
    for t in range(ex.trials):
        args = ex.inputs(rng, t)
        try:
            out = fn(*_copy(args))
        except NotImplementedError:
            return Result(ex.name, "not attempted", "not attempted yet: replace the `raise NotImplementedError` line")
        except Exception as e:  # the learner's code failed: name the error, not ours
            return Result(ex.name, "hint", f"your function raised {type(e).__name__}: {str(e)[:120]} "
                          f"(expected {ex.signature})")
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


ANSWERS = {  # question -> answer_hash of the right choice (the choices are in the notebooks)
    "m0.q1": "6cfebdfbf744c1dba3f1090d865cf74cae31ee2f0ae30cbcc00c141b2869f286",
    "m0.q2": "9aefdcc1143aca263e54d454df169e44a0a66fb9ac2a6ef76df33c4b090e2430",
    "m1.q1": "b22a900cf5cc69bde10a5ffe64db2aa9d9826126f6e75ebbe40272c1a2238236",
    "m1.q2": "20a2d503615d35cd053a84b0e825f964748f5ebf45911f9e1ee22f82c2b10341",
    "m2.q1": "6afe37fb703063b5af76c47e9905f78e0f02097f6656e5e18eaf8fc634db24b9",
    "m2.q2": "ba70df8ae493ad766d7f288a047ce4e7c1c2ed800736234bdaae3a517e4327cf",
    "m3.q1": "5b33b4ac4212144500446f4693cf404ce15e0438782b70b5de941aa51f4e84c6",
    "m3.q2": "03ad8587a5dc76ba3443e3d7fab02b3457c423c3921fc671f0d392dcac77d2cc",
    "m4.q1": "efd9c7fbf82ce92ebb98874b513cf2c2bee93c0f0b139b03e7a5813e7aa3edcf",
    "m4.q2": "f3014d0bde9ef2f56311e228beb7cc387233b0ce4f2124c75240e7bf689b3d27",
}


def answer(question: str, choice: str) -> Result:
    """Check a multiple-choice answer ("a", "b", ...) against its stored hash; print and return a Result."""
    if question not in ANSWERS:
        raise KeyError(f"no question {question!r}; the questions are {sorted(ANSWERS)}")
    if not str(choice or "").strip():
        result = Result(question, "not attempted", "not attempted yet: set your answer to one of the letters")
    elif answer_hash(question, str(choice)) == ANSWERS[question]:
        result = Result(question, "correct", "correct")
    else:
        result = Result(question, "hint", f"{str(choice).strip()!r} is not it: re-read the question and try again")
    results[question] = result.status
    print(result)
    return result


def summary() -> str:
    """One line per exercise and question seen in this session, for the end of a module."""
    lines = [f"{name}: {status}" for name, status in results.items()]
    text = "\n".join(lines) or "no checks run yet"
    print(text)
    return text
