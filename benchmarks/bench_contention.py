"""Contention benchmark: each kind of lab workload alone and beside one busy process
(`python -c "while True: pass"`, started here), under the lab's thread policy ('fair': torch's
count fitted to the load), the libraries' defaults ('spin', what the lab did before lab.threads) and,
when asked, passive waiting ('passive'), in the same run. Prints seconds,
the slowdown beside the busy process (floor: <= 2.3x) and fair-alone / spin-alone (floor: <= 1.05).

    python benchmarks/bench_contention.py [--workloads encode attribution probe umap train notebook03]
                                          [--policies fair spin (passive)] [--repeat 1] [--quick]

Each measurement is a fresh process (wait policies are read when OpenMP / BLAS load) that sets the
workload up, runs it once to warm up where first calls cost extra (numba compiles, lazy imports),
then times one run. Embeddings are computed once into a shared cache before anything is timed;
results the lab memoizes are recomputed in every timed run (cache=False or a fresh memo folder).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _busy import busy as busy_process  # noqa: E402
WORKLOADS = ("encode", "attribution", "probe", "umap", "train", "notebook03")
BUSY_LIMIT, ALONE_LIMIT = 2.3, 1.05


# -- the workloads (run in the worker process) ---------------------------------------------------

def _setup(name: str, quick: bool, scratch: Path):
    """-> (warm-up callable or None, timed callable)."""
    import lab
    n = 64 if quick else 256
    if name == "encode":  # a folder of JPEGs through DataLoader workers, embeddings not read from the cache
        from _common import make_jpegs
        paths = make_jpegs(scratch / "jpegs", n)
        model = lab.load_model("lab-vit-tiny")
        return (lambda: model.encode_images(paths[:32], cache=False, progress=False),
                lambda: model.encode_images(paths, cache=False, progress=False))
    if name == "attribution":  # relevance (ViT) and Grad-CAM (ResNet) over a batch of images x prompts
        from lab.studies import attribution as at
        from lab.data.shapeworld import WorldDataset
        ds = WorldDataset("test", n // 2)
        images = [ds.source(i) for i in range(len(ds))]
        prompts = ["a photo of a red circle.", "a photo of a blue square.", "a drawing of a star."]
        models = [lab.load_model("lab-vit-tiny"), lab.load_model("lab-rn-tiny")]

        def attribute_all(k):
            for m in models:
                at.attribute(m, images[:k], prompts, method="auto", batch_size=16, progress=False, cache=False)
        return (lambda: attribute_all(2)), (lambda: attribute_all(len(images)))
    if name == "probe":  # the linear-probe sweep of notebook 04 on cached features (scikit-learn)
        from lab.studies import robustness as rb
        from lab import threads
        from lab.data.shapeworld import WorldDataset
        model = lab.load_model("lab-vit-tiny")
        train, val = WorldDataset("train", 4 * n), WorldDataset("val", n)
        model.encode_images(train, progress=False), model.encode_images(val, progress=False)

        def sweep():
            with threads.small_work():  # as the lab's baselines fit it
                rb.linear_probe(model, train, val)(val)
        return None, sweep
    if name == "umap":
        import numpy as np
        from lab.studies import maps as em
        from lab.data.shapeworld import WorldDataset
        emb = lab.load_model("lab-vit-tiny").encode_images(WorldDataset("test", 4 * n), progress=False)
        emb = emb[np.isfinite(emb).all(1)]
        return (lambda: em.project(emb[:200], "umap", cache=False)), (lambda: em.project(emb, "umap", cache=False))
    if name == "train":  # training steps of the tiny ViT, batches rendered by the trainer's DataLoader worker
        from lab.training.train import TrainConfig, train
        steps = n // 16

        def train_steps():
            out = tempfile.mkdtemp(dir=scratch)
            train(TrainConfig(steps=steps, warmup=steps // 2, epoch_steps=steps, val_n=40, out=f"{out}/model.pt"),
                  progress=False)
        return None, train_steps
    if name == "notebook03":  # the notebook's code cells in this process (no kernel start), fresh memo folder
        import nbformat
        import plotly.io as pio
        from lab.studies import attribution, attribution_metrics
        from lab import notebook  # noqa: F401  imports are not the workload
        pio.renderers.default = "json"
        notebook.static_figures_missing = lambda: "(not timed)"  # PNG/SVG export runs in kaleido's Chromium,
        notebook._png_warning_shown = True                       # not in the lab's thread pools
        nb = nbformat.read(ROOT / "notebooks" / "03_attribution.ipynb", as_version=4)
        cells = [c.source for c in nb.cells if c.cell_type == "code"]
        params = (f"indices = [0, 1]\nn_metric = {n // 8}\nsteps = 8\noutput_dir = {str(scratch / 'nb03')!r}\n"
                  "metric_methods = ['relevance', 'rollout', 'gradcam', 'random']\n"
                  "methods = ['relevance', 'rollout', 'gradcam', 'gradcam++', 'smoothgrad', 'random']")

        def cells_of_the_notebook():
            os.environ["LAB_CACHE_DIR"] = tempfile.mkdtemp(dir=scratch)  # maps and metrics computed afresh
            ns = {"display": lambda *a, **k: None}
            for src in [cells[0] + "\n" + params, *cells[1:]]:
                exec(compile(src.replace("fig.show()", "pass"), "notebook03", "exec"), ns)
        return None, cells_of_the_notebook
    raise ValueError(f"unknown workload {name!r}; choose from {WORKLOADS}")


def worker(name: str, quick: bool, scratch: Path):
    warm, timed = _setup(name, quick, scratch)
    if warm is not None:
        warm()
    start = time.perf_counter()
    timed()
    print(json.dumps({"seconds": time.perf_counter() - start}))


# -- the driver ----------------------------------------------------------------------------------

def measure(name: str, policy: str, busy: bool, quick: bool, scratch: Path) -> float:
    env = {**os.environ, "LAB_THREAD_POLICY": policy, "LAB_CACHE_DIR": str(scratch / "cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for k in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "OPENBLAS_THREAD_TIMEOUT"):  # the policy decides, not our parent
        env.pop(k, None)
    with busy_process(busy):
        out = subprocess.run([sys.executable, __file__, "--worker", name, *(["--quick"] if quick else []),
                              "--scratch", str(scratch)], env=env, cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{name} ({policy}, busy={busy}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    ap.add_argument("--policies", nargs="+", default=["fair", "spin"], choices=["fair", "passive", "spin"])
    ap.add_argument("--repeat", type=int, default=1, help="best of this many runs per measurement")
    ap.add_argument("--quick", action="store_true", help="smaller workloads (a smoke test)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--scratch", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.quick, Path(args.scratch))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a killed run still stops its busy process
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for name in args.workloads:  # fill the embedding cache and compile numba before anything is timed
            measure(name, args.policies[0], False, args.quick, scratch)
        print(f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} CPUs; "
              f"best of {args.repeat}; busy = one `python -c \"while True: pass\"` beside the workload")
        print(f"{'workload':<13}{'policy':<7}{'alone s':>9}{'busy s':>9}{'busy/alone':>12}")
        alone: dict = {}
        spread: dict = {}  # how much spin's own alone runs varied: the noise a ratio sits in
        failed = []
        for name in args.workloads:
            runs: dict = {}
            for _ in range(args.repeat):  # policies interleaved: a slow spell of the machine hits them alike
                for policy in args.policies:
                    for busy in (False, True):
                        runs.setdefault((policy, busy), []).append(measure(name, policy, busy, args.quick, scratch))
            for policy in args.policies:
                a, b = min(runs[policy, False]), min(runs[policy, True])
                alone[name, policy] = a
                spread[name, policy] = max(runs[policy, False]) / a - 1
                ok = policy != "fair" or b / a <= BUSY_LIMIT
                failed += [] if ok else [f"{name} beside a busy process {b / a:.2f}x > {BUSY_LIMIT}x"]
                print(f"{name:<13}{policy:<7}{a:>9.2f}{b:>9.2f}{b / a:>11.2f}x{'' if ok else '  over the floor'}",
                      flush=True)
        against_spin = [p for p in args.policies if p != "spin"] if "spin" in args.policies else []
        for policy in against_spin:
            print(f"alone, {policy} / spin (against the libraries' defaults):")
            for name in args.workloads:
                r = alone[name, policy] / alone[name, "spin"]
                over = policy == "fair" and r > ALONE_LIMIT
                failed += [f"{name} alone {r:.2f}x the old policy's time"] if over else []
                noise = f"   (spin's own alone runs varied {spread[name, 'spin']:.0%})" if args.repeat > 1 else ""
                print(f"  {name:<13}{r:6.2f}x{noise}")
        print("floors met" if not failed else "over the floors: " + "; ".join(failed))


if __name__ == "__main__":
    main()
