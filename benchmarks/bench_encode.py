"""Encoding and cache benchmark (CPU). Prints figures as ratios against baselines measured in
the same run.

    python benchmarks/bench_encode.py [--n 2000] [--rounds 3] [--warm-files 50000] [--read 100000]

1. cold encode: lab.encode_images vs the bare open_clip loop (same model, JPEGs, batch, device), and
   vs the pure forward pass on ready tensors (the limit: no reading, decoding or cache)
2. warm re-encode (everything cached) vs cold
3. warm pass over many cached files (stat + lookups only)
4. reading cached 512-d vectors from the SQLite cache
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import lab
from _common import HERE, bare_open_clip, make_jpegs, timed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="JPEG files of 256 px for the cold/warm runs")
    ap.add_argument("--warm-files", type=int, default=50000, help="files in the warm-pass test")
    ap.add_argument("--read", type=int, default=100000, help="vectors in the read test")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3, help="alternating bare/lab rounds for the cold comparison")
    ap.add_argument("--data", default=str(HERE / ".data"), help="where the synthetic images are kept")
    args = ap.parse_args()
    data = Path(args.data)
    paths = make_jpegs(data / "jpeg256", args.n)
    with tempfile.TemporaryDirectory() as tmp:
        model = lab.load_model("lab-vit-bench", pretrained="random", device="cpu", cache=Path(tmp) / "c1")
        print(f"machine: {torch.get_num_threads()} torch threads; model {model}")
        t_bases, t_colds = [], []
        for r in range(args.rounds):  # alternate the two, a fresh cache each round; medians
            base, t = timed(bare_open_clip, model.module, model.preprocess, paths, args.batch_size, model.device)
            t_bases.append(t)
            model.cache = lab.EmbeddingCache(Path(tmp) / f"cold{r}")
            cold, t = timed(model.encode_images, paths, batch_size=args.batch_size, progress=False)
            t_colds.append(t)
        t_base, t_cold = float(np.median(t_bases)), float(np.median(t_colds))
        ready = torch.stack([model.preprocess(Image.open(p).convert("RGB")) for p in paths])  # (N, 3, 224, 224)
        _, t_forward = timed(lambda: [model.embed_image_tensors(ready[s:s + args.batch_size])
                                      for s in range(0, args.n, args.batch_size)])
        warm, t_warm = timed(model.encode_images, paths, batch_size=args.batch_size, progress=False)
        assert np.allclose(base, cold, atol=1e-4) and np.array_equal(cold, warm)
        print(f"[1] cold encode, {args.n} JPEGs 256px, batch {args.batch_size}, median of {args.rounds} rounds:")
        print(f"    bare open_clip loop {args.n / t_base:8.1f} img/s   lab {args.n / t_cold:8.1f} img/s   "
              f"ratio lab/bare = {t_base / t_cold:.2f}  (target >= 1.0)")
        print(f"    pure forward on ready tensors {args.n / t_forward:8.1f} img/s   lab/pure forward = "
              f"{t_forward / t_cold:.2f}  (target >= 0.95)")
        print(f"[2] warm re-encode: {t_warm:.3f} s vs cold {t_cold:.2f} s -> {t_cold / t_warm:.0f}x faster (target >= 20x)")

        tiny = lab.load_model("lab-vit-tiny", device="cpu", cache=Path(tmp) / "c2")
        many = make_jpegs(data / "jpeg64", args.warm_files, size=64)
        _, t_fill = timed(tiny.encode_images, many, batch_size=256, progress=False)
        _, t_pass = timed(tiny.encode_images, many, batch_size=256, progress=False)
        print(f"[3] warm pass over {args.warm_files} cached files: {t_pass:.2f} s "
              f"(cold encode took {t_fill:.1f} s; target <= 5 s)")

        cache = lab.EmbeddingCache(Path(tmp) / "c3")
        rng = np.random.default_rng(0)
        keys = [f"file:{i:064x}" for i in range(args.read)]
        for s in range(0, args.read, 10000):
            cache.put("bench", "image", keys[s:s + 10000], rng.standard_normal((len(keys[s:s + 10000]), 512)))
        got, t_read = timed(cache.get, "bench", "image", keys)
        assert len(got) == args.read
        print(f"[4] read {args.read} cached 512-d vectors: {t_read:.2f} s -> {args.read / t_read:,.0f} vectors/s "
              "(target >= 100,000/s)")


if __name__ == "__main__":
    main()
