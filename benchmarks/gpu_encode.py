"""GPU encode benchmark: ViT-B/32 with random weights, fp16, >= 10,000 JPEGs; the bare open_clip
loop vs lab.encode_images, images per second. One command on a machine with a CUDA GPU:

    python benchmarks/gpu_encode.py [--n 10000] [--batch-size 256]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import lab
from _common import HERE, bare_open_clip, make_jpegs, timed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--data", default=str(HERE / ".data"))
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: this benchmark needs one (CPU figures: benchmarks/bench_encode.py)")
    paths = make_jpegs(Path(args.data) / "jpeg256", args.n)
    with tempfile.TemporaryDirectory() as tmp:
        model = lab.load_model("ViT-B-32", pretrained="random", device="cuda", precision="fp16", cache=tmp)
        print(f"{torch.cuda.get_device_name()}: {model}")
        bare_open_clip(model.module, model.preprocess, paths[:512], args.batch_size, model.device, torch.float16)
        base, t_base = timed(bare_open_clip, model.module, model.preprocess, paths, args.batch_size,
                             model.device, torch.float16)
        cold, t_cold = timed(model.encode_images, paths, batch_size=args.batch_size, progress=False)
        _, t_warm = timed(model.encode_images, paths, batch_size=args.batch_size, progress=False)
        print(f"max |lab - bare| = {np.abs(base - cold).max():.2e}")
        print(f"bare open_clip {args.n / t_base:8.0f} img/s   lab cold {args.n / t_cold:8.0f} img/s   "
              f"ratio {t_base / t_cold:.2f}   lab warm {args.n / t_warm:8.0f} img/s")


if __name__ == "__main__":
    main()
