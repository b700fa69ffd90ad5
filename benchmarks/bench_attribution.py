"""Attribution benchmark (CPU, the built-in tiny models): maps per second for 64 images x 4 prompts
per method, and the cost of one batch of 64 vs the same images one by one (ratio in the same run).

    python benchmarks/bench_attribution.py [--images 64] [--methods relevance rollout gradcam ...]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import lab
from lab import attribution as at
from lab.data.world import WorldDataset

PROMPTS = ["a photo of a red circle.", "a photo of a blue square.", "a drawing of a star.", "a green heart."]
FAST = {"relevance", "rollout", "gradcam", "gradcam++", "smoothgrad", "random"}


def seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--methods", nargs="*", help="default: every method that applies (occlusion and "
                                                   "integrated gradients on 16 images: they are slow)")
    args = ap.parse_args()
    os.environ.setdefault("LAB_CACHE_DIR", tempfile.mkdtemp())
    data = WorldDataset("test", args.images)
    images = [data.source(i) for i in range(args.images)]
    print(f"{args.images} images x {len(PROMPTS)} prompts, this CPU ({os.cpu_count()} cores)")
    print(f"{'model':<14}{'method':<22}{'images':>7}{'maps/s':>9}{'batch s':>9}{'1-by-1 s':>10}{'ratio':>7}")
    for name in ("lab-vit-tiny", "lab-rn-tiny"):
        model = lab.load_model(name)
        model.encode_texts(PROMPTS, progress=False)  # text embeddings cached before timing
        for method in args.methods or at.list_methods(model):
            if method not in at.list_methods(model):
                continue
            n = args.images if method in FAST else min(16, args.images)
            subset = images[:n]
            at.attribute(model, subset[:2], PROMPTS, method=method)  # warm-up (lazy imports, first-call costs)
            batched = seconds(lambda: at.attribute(model, subset, PROMPTS, method=method, batch_size=n))
            single = seconds(lambda: [at.attribute(model, [im], PROMPTS, method=method, batch_size=1) for im in subset])
            print(f"{name:<14}{method:<22}{n:>7}{n * len(PROMPTS) / batched:>9.1f}{batched:>9.2f}{single:>10.2f}"
                  f"{single / batched:>7.1f}x")


if __name__ == "__main__":
    main()
