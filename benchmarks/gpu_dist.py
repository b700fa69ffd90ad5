"""Ray engine on GPUs: ViT-B/32 with random weights, fp16, >= 10,000 JPEGs, one encoder worker per GPU,
against in-process encode_images on the same GPU(s); img/s printed beside clip-retrieval's published
2,500 img/s per A100 (ViT-B/32, resize-bound). One command on a machine with CUDA GPUs:

    python benchmarks/gpu_dist.py [--n 10000] [--batch-size 256] [--cpus-per-worker 2]

Target: Ray >= 0.9x in-process on one GPU (the same GPU, the same batch size).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import lab
from lab import dist
from lab.dist import runs
from _common import HERE, make_jpegs, timed

CLIP_RETRIEVAL_A100 = 2500  # img/s, ViT-B/32, one A100 (clip-retrieval's README)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--cpus-per-worker", type=float, default=2,
                    help="the encoder's own CPUs; the other cores run the decode tasks")
    ap.add_argument("--data", default=str(HERE / ".data"))
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: this benchmark needs one (CPU figures: benchmarks/bench_dist.py)")
    gpus = torch.cuda.device_count()
    cores = len(os.sched_getaffinity(0))
    cpus = args.cpus_per_worker
    paths = make_jpegs(Path(args.data) / "jpeg256", args.n)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = lab.load_model("ViT-B-32", pretrained="random", device="cuda", precision="fp16", cache=tmp / "c")
        print(f"{gpus} x {torch.cuda.get_device_name()}, {cores} cores: {model}")
        model.encode_images(paths[:512], batch_size=args.batch_size, cache=False, progress=False)  # warm
        proc, t_proc = timed(model.encode_images, paths, batch_size=args.batch_size, cache=False, progress=False)
        t = time.perf_counter()
        with dist.connect(None):
            t_connect = time.perf_counter() - t
            one = dist.encode_images(model, paths, tmp / "one", workers=1, gpus_per_worker=1, cpus_per_worker=cpus,
                                     batch_size=args.batch_size, wave_size=4096, cache_import=False, progress=False)
            every = dist.encode_images(model, paths, tmp / "all", workers=gpus, gpus_per_worker=1,
                                       cpus_per_worker=cpus, batch_size=args.batch_size, wave_size=4096,
                                       cache_import=False, progress=False) if gpus > 1 else one
        _, emb = runs.read_run(tmp / "one")
        print(f"max |ray - in-process| = {np.nanmax(np.abs(emb - proc)):.2e} (fp16)")

        def rate(m):
            last = m["last_run"]
            return last["dispatched"] / (last["seconds"] - last["startup_s"])
        print(f"startup: connect {t_connect:.1f} s, first batch back after {one['last_run']['startup_s']:.1f} s")
        print(f"in-process {args.n / t_proc:8.0f} img/s   ray, 1 worker on 1 GPU {rate(one):8.0f} img/s   "
              f"ratio {rate(one) / (args.n / t_proc):.2f} (target >= 0.9)")
        print(f"ray, {gpus} workers on {gpus} GPUs {rate(every):8.0f} img/s = {rate(every) / gpus:.0f} img/s per GPU; "
              f"clip-retrieval: {CLIP_RETRIEVAL_A100} img/s per A100")


if __name__ == "__main__":
    main()
