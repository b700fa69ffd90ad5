"""Attribution benchmark (CPU, the built-in tiny models): maps per second for 64 images x 4 prompts
per method, and the cost of one call for the whole batch vs the same work one by one, in the same
run: one call per image (with all 4 prompts), and one call per (image, prompt) pair. Each time is
the best of --repeat runs.

    python benchmarks/bench_attribution.py [--images 64] [--repeat 3] [--methods relevance rollout ...]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import lab
from lab.studies import attribution as at
from lab.data.shapeworld import WorldDataset

PROMPTS = ["a photo of a red circle.", "a photo of a blue square.", "a drawing of a star.", "a green heart."]
FAST = {"relevance", "rollout", "gradcam", "gradcam++", "smoothgrad", "random"}


def seconds(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--methods", nargs="*", help="default: every method that applies (occlusion and "
                                                   "integrated gradients on 16 images: they are slow)")
    args = ap.parse_args()
    os.environ.setdefault("LAB_CACHE_DIR", tempfile.mkdtemp())
    data = WorldDataset("test", args.images)
    images = [data.source(i) for i in range(args.images)]
    print(f"{args.images} images x {len(PROMPTS)} prompts, this CPU ({os.cpu_count()} cores)")
    print(f"{'model':<14}{'method':<22}{'images':>7}{'maps/s':>9}{'batch s':>9}"
          f"{'per image s':>13}{'ratio':>7}{'per pair s':>12}{'ratio':>7}")
    for name in ("lab-vit-tiny", "lab-rn-tiny"):
        model = lab.load_model(name)
        model.encode_texts(PROMPTS, progress=False)  # text embeddings cached before timing
        for method in args.methods or at.list_methods(model):
            if method not in at.list_methods(model):
                continue
            n = args.images if method in FAST else min(16, args.images)
            subset = images[:n]
            at.attribute(model, subset[:2], PROMPTS, method=method)  # warm-up (lazy imports, first-call costs)
            batched = seconds(lambda: at.attribute(model, subset, PROMPTS, method=method, batch_size=n,
                                                   progress=False), args.repeat)
            per_image = seconds(lambda: [at.attribute(model, [im], PROMPTS, method=method, batch_size=1,
                                                      progress=False) for im in subset], args.repeat)
            per_pair = seconds(lambda: [at.attribute(model, [im], [p], method=method, batch_size=1, progress=False)
                                        for im in subset for p in PROMPTS], args.repeat)
            print(f"{name:<14}{method:<22}{n:>7}{n * len(PROMPTS) / batched:>9.1f}{batched:>9.2f}"
                  f"{per_image:>13.2f}{per_image / batched:>6.1f}x{per_pair:>12.2f}{per_pair / batched:>6.1f}x",
                  flush=True)


if __name__ == "__main__":
    main()
