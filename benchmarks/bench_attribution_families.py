"""Attribution per model family (CPU): maps/s of each family's own method (relevance, or Grad-CAM for a
CNN) against integrated gradients on the same images and prompts, in the same run, on the small
seeded-random towers of the model matrix (tests/core/test_model_matrix.py). Floor: the family's own
method >= 10x the maps/s of integrated gradients. Nothing is read from the attribution cache.

    python benchmarks/bench_attribution_families.py [--images 8] [--repeat 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import lab
from lab.data.shapeworld import WorldDataset
from lab.studies import attribution as at

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "core")]
from test_model_matrix import FAMILIES, load  # noqa: E402  the matrix's families, registered configs included
from tests._transformers_checkpoints import save_checkpoint  # noqa: E402

PROMPTS = ["a photo of a red circle.", "a photo of a blue square."]


def maps_per_second(model, images, method: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        at.attribute(model, images, PROMPTS, method=method, batch_size=len(images), progress=False, cache=False)
        best = min(best, time.perf_counter() - t)
    return len(images) * len(PROMPTS) / best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    cache = lab.EmbeddingCache(tmp / "cache")
    folders = {name: save_checkpoint(name, tmp) for loader, name in FAMILIES.values() if loader == "transformers"}
    data = WorldDataset("test", args.images)
    images = [data.source(i) for i in range(args.images)]
    print(f"{args.images} images x {len(PROMPTS)} prompts, CPU ({os.cpu_count()} cores); floor: own >= 10x IG")
    print(f"{'family':<44}{'own method':<12}{'maps/s':>9}{'IG maps/s':>11}{'ratio':>8}  floor")
    for family in FAMILIES:
        model = load(family, folders, cache)
        model.encode_texts(PROMPTS, progress=False)
        own = at.list_methods(model)[0]
        at.attribute(model, images[:1], PROMPTS, method=own, progress=False, cache=False)  # warm-up
        fast = maps_per_second(model, images, own, args.repeat)
        slow = maps_per_second(model, images, "integrated_gradients", 1)
        print(f"{family:<44}{own:<12}{fast:>9.1f}{slow:>11.2f}{fast / slow:>7.0f}x  "
              f"{'met' if fast >= 10 * slow else 'MISSED'}", flush=True)


if __name__ == "__main__":
    main()
