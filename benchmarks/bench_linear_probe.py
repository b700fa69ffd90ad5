"""Linear-probe benchmark (CPU): the paper's λ search (≤ 15 L-BFGS fits) with BLAS limited to one
thread, as lab.studies.linear_probe runs it, against the same fits with BLAS's default thread count.
Prints seconds (best of --repeats) and the ratio; the chosen λ must agree.

    python benchmarks/bench_linear_probe.py [--n 2500] [--d 512] [--classes 10]

Data: n clustered unit vectors of dimension d (the shape of cached CLIP embeddings).
"""
from __future__ import annotations

import argparse
import time
from contextlib import nullcontext
from unittest import mock

import numpy as np

from lab.studies import linear_probe as lp


def data(n: int, d: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(size=(classes, d))[y] * 0.3 + rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True), y


def timed(x, y, single: bool, repeats: int) -> tuple[float, int]:
    cut = int(0.8 * len(x))
    best, index = np.inf, -1
    patch = nullcontext() if single else mock.patch.object(lp, "_single_thread", nullcontext)
    with patch:
        for _ in range(repeats):
            start = time.perf_counter()
            index, _ = lp.select_lambda(x[:cut], y[:cut], x[cut:], y[cut:])
            best = min(best, time.perf_counter() - start)
    return best, index


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=2500)
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    x, y = data(args.n, args.d, args.classes)
    one, i1 = timed(x, y, True, args.repeats)
    many, i2 = timed(x, y, False, args.repeats)
    print(f"λ search on {args.n} x {args.d}, {args.classes} classes: single-thread BLAS {one:.2f} s, "
          f"default threads {many:.2f} s, ratio {many / one:.2f}x; chosen λ {lp.LAMBDAS[i1]:.3g} / {lp.LAMBDAS[i2]:.3g}")


if __name__ == "__main__":
    main()
