"""Ray engine benchmark (CPU): lab.dist against in-process encode_images on the same cores, ratios
measured in one run.

    python benchmarks/bench_dist.py [--n 256] [--model ViT-B-32] [--rows 200000]

1. startup: connect (a local cluster) and first worker ready, printed separately
2. steady-state img/s, Ray with 2 workers of one thread each vs in-process (2 cores)   (target >= 0.85x)
3. 2 encoder workers vs 1                                                              (target >= 1.6x)
4. `cache import` rows/s from a synthetic run folder of 512-d vectors                 (target >= 50,000/s)
5. peak memory (PSS) of the whole local cluster and this driver, sampled during the Ray runs only
   (reading /proc/PID/smaps costs CPU: the in-process baselines run without the sampler)  (target <= 6 GiB)
"""
from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

import lab
from lab import dist
from lab.dist import runs
from _common import HERE, make_jpegs, timed


class PeakMemory:
    """Samples the PSS of this process and all its children (the local Ray cluster) in a thread."""

    def __init__(self, every: float = 0.5):
        self.peak, self.every, self._stop = 0, every, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_full_info().pss
                except (psutil.Error, OSError):
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def steady(manifest: dict) -> float:
    """Images per second after the first batch came back (startup excluded)."""
    last = manifest["last_run"]
    return last["dispatched"] / max(last["seconds"] - last["startup_s"], 1e-9)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256, help="JPEG files of 256 px")
    ap.add_argument("--model", default="ViT-B-32", help="an open_clip architecture (random weights) or a lab model")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rows", type=int, default=200_000, help="rows in the cache-import test")
    ap.add_argument("--data", default=str(HERE / ".data"))
    args = ap.parse_args()
    paths = make_jpegs(Path(args.data) / "jpeg256", args.n)
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pretrained = None if args.model.startswith("lab-") else "random"
        model = lab.load_model(args.model, pretrained=pretrained, device="cpu", cache=tmp / "c0")
        print(f"machine: {cores} cores; model {model}; {args.n} JPEGs, batch {args.batch_size}")
        model.encode_images(paths[:args.batch_size], cache=False, progress=False)  # built and warm

        def in_process() -> float:
            _, t = timed(model.encode_images, paths, batch_size=args.batch_size, cache=False, progress=False,
                         num_workers=cores)
            return args.n / t
        procs = [in_process()]

        t = time.perf_counter()
        with PeakMemory() as mem, dist.connect(None, num_cpus=cores):  # logical CPUs = physical ones
            t_connect = time.perf_counter() - t
            rates, startups = {}, {}
            for workers in (2, 1):
                m = dist.encode_images(model, paths, tmp / f"run{workers}", workers=workers, cpus_per_worker=1,
                                       batch_size=args.batch_size, wave_size=args.n, cache_import=False,
                                       progress=False)
                rates[workers], startups[workers] = steady(m), m["last_run"]["startup_s"]
        procs.append(in_process())  # before and after the Ray runs: the better one is the baseline
        proc = max(procs)
        print(f"[1] startup: connect (local cluster) {t_connect:.1f} s; first batch back after "
              f"{startups[2]:.1f} s (2 workers), {startups[1]:.1f} s (1 worker)")
        print(f"[2] steady state: ray 2 workers {rates[2]:7.1f} img/s   in-process ({cores} DataLoader workers) "
              f"{proc:7.1f} img/s (best of {len(procs)})   ratio ray/in-process = {rates[2] / proc:.2f}  "
              "(target >= 0.85)")
        print(f"[3] ray 2 workers vs 1: {rates[2]:.1f} / {rates[1]:.1f} img/s = {rates[2] / rates[1]:.2f}x  "
              "(target >= 1.6x)")

        folder, dim, per = tmp / "synthetic-run", 512, 20_000
        folder.mkdir()
        rng = np.random.default_rng(0)
        meta = {"model": "bench", "fingerprint": "f" * 64, "modality": "image", "dim": dim}
        for w, s in enumerate(range(0, args.rows, per)):
            k = min(per, args.rows - s)
            vecs = rng.standard_normal((k, dim)).astype(np.float32)
            rows = [{"item": f"/data/{s + i:09d}.jpg", "key": f"file:{s + i:064x}", "ok": True, "error": None,
                     "embedding": vecs[i], "origin": "engine", "stat": [1, 2, 3]} for i in range(k)]
            runs.write_part(runs.part_path(folder, w), rows, meta, dim)
        runs.write_manifest(folder, {**meta, "status": "complete"})
        done, t_import = timed(runs.import_run, folder, lab.EmbeddingCache(tmp / "c-import"))
        print(f"[4] cache import: {done['rows']:,} rows in {t_import:.2f} s -> {done['rows'] / t_import:,.0f} rows/s "
              "(target >= 50,000/s)")
    print(f"[5] peak memory (PSS) of the local cluster + driver: {mem.peak / 2**30:.2f} GiB (target <= 6 GiB)")


if __name__ == "__main__":
    main()
