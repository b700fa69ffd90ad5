"""Offline rooms: check a learner's machine, and pre-compute everything the modules use.

    python -m lab workshop check                    # one line per problem, each with its fix (<= 30 s)
    python -m lab workshop check --cache cache.zip  # will this machine read the hand-out? how many entries?
    python -m lab workshop check --hub              # on a JupyterHub: the server's environment too
    python -m lab workshop prepare --out cache.zip  # every embedding and map the modules compute

`prepare` runs the solution edition of every module against an empty cache folder and zips that
folder with a manifest (MANIFEST: the versions, lab code and model fingerprints its entries are keyed
by); learners unzip it into their cache folder (`$LAB_CACHE_DIR` or ~/.cache/clip-lab) and the first
run of each module reads instead of computing. Embeddings are keyed by the model's fingerprint (weights,
preprocessing and precision: a CUDA machine computes in fp16, a CPU in fp32), memoized results also by
the lab's code and the versions of the packages they name (lab.core.memo): `check --cache` compares
those with this machine's and says how many entries it will read.

On a JupyterHub the page's extensions (widgets, anywidget, plotly) come from the environment the
Jupyter server runs in, which may not be the kernel's: `check --hub` finds the server's Python (the
running server's process, `jupyter` on PATH, or the one named) and checks it.
"""
from __future__ import annotations

import importlib
import json
import os
import sqlite3
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from ..errors import LabError
from .cache_check import MANIFEST, check_cache, manifest, memo_inputs, read_manifest
from .server_check import SERVER_EXTENSIONS, check_server, server_python

__all__ = ["PACKAGES", "MODELS", "MAX_ZIP_MB", "MANIFEST", "SERVER_EXTENSIONS", "check_machine", "check_cache",
           "check_server", "memo_inputs", "manifest", "read_manifest", "server_python", "prepare", "timed_check"]

PACKAGES = {"torch": "torch", "open_clip": "open_clip_torch", "numpy": "numpy", "pandas": "pandas",
            "plotly": "plotly", "ipywidgets": "ipywidgets", "captum": "captum", "sklearn": "scikit-learn",
            "nbclient": "nbclient", "ipykernel": "ipykernel", "jupyterlab": "jupyterlab"}
MODELS = ("lab-vit-tiny", "lab-rn-tiny")
MAX_ZIP_MB = 60


def _packages() -> list[str]:
    problems = []
    for module, dist in PACKAGES.items():
        try:
            importlib.import_module(module)
        except Exception as e:  # ImportError, or a broken install raising anything
            problems.append(f"package {dist} cannot be imported ({type(e).__name__}: {e}): pip install {dist}")
    return problems


def _models() -> list[str]:
    import numpy as np
    import lab
    from lab.data.shapeworld import WorldDataset
    images = [WorldDataset("test", n=4).source(i) for i in range(4)]
    problems = []
    for name in MODELS:
        try:
            model = lab.load_model(name)
            emb = model.encode_images(images, cache=False, progress=False, strict=True)  # (4, D) through the model
            if emb.shape[0] != 4 or not np.isfinite(emb).all():
                problems.append(f"model {name} encodes images to NaN: reinstall the lab (pip install -e .), "
                                "its checkpoint file may be damaged")
        except Exception as e:
            problems.append(f"model {name} does not load or encode ({type(e).__name__}: {str(e)[:200]}): "
                            "reinstall the lab (pip install -e .) so lab/checkpoints/ is complete")
    return problems


def _cache() -> list[str]:
    from ..core.cache import default_cache_dir
    folder = default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as e:
        return [f"cache folder {folder} is not writable ({e.strerror}): set LAB_CACHE_DIR to a writable folder"]
    return []


def _kernel() -> list[str]:
    from jupyter_client.kernelspec import KernelSpecManager
    from ..report import KERNEL
    specs = KernelSpecManager().get_all_specs()
    if KERNEL in specs:
        return []
    here = os.path.realpath(sys.executable)
    for spec in specs.values():
        argv = spec.get("spec", {}).get("argv", [])
        if argv and os.path.realpath(argv[0]) == here:
            return []
    return [f"no Jupyter kernel runs this Python ({sys.executable}): python -m ipykernel install --user "
            f"--name {KERNEL} --display-name 'CLIP Lab (Python 3)'"]


def _widgets_front_end() -> list[str]:
    from jupyter_core.paths import jupyter_path
    problems = []
    for ext, dist in SERVER_EXTENSIONS.items():
        if not any((Path(p) / "labextensions" / ext).is_dir() for p in jupyter_path()):
            problems.append(f"JupyterLab extension {ext} is missing (widgets/figures would not show): "
                            f"pip install {dist}, then restart JupyterLab")
    return problems


# -- the whole check ------------------------------------------------------------------------------------

def check_machine(hub: str | os.PathLike | None = None, cache: str | os.PathLike | None = None,
                  info: list | None = None) -> list[str]:
    """Every problem found, one line each with its fix (empty: ready). hub: check the Jupyter server's
    environment instead of the kernel's for the page's extensions and the kernel ('auto' finds it, or its
    Python / prefix). cache: cache.zip or the folder it was unpacked into (default: the cache folder, when
    it holds a manifest). info: a list that gets the lines that are not problems (what was checked, the
    cache's verdict with its counts)."""
    problems = _packages()
    for step in [_cache] + ([_kernel, _widgets_front_end] if hub is None else []):
        problems += step()
    if hub is not None:
        problems += check_server(hub, info)
    if not any(p.startswith("package torch") or p.startswith("package open_clip") for p in problems):
        problems += _models()
        try:
            problems += check_cache(cache, info)
        except LabError as e:
            problems.append(str(e))
    return problems


def prepare(out: str | Path = "cache.zip", modules: list[str] | None = None) -> dict:
    """Execute the solutions against a fresh cache folder and zip it with its MANIFEST -> {path, bytes,
    files, manifest}."""
    from .build import build
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        cache, editions = Path(tmp) / "cache", Path(tmp) / "build"
        before = os.environ.get("LAB_CACHE_DIR")
        os.environ["LAB_CACHE_DIR"] = str(cache)  # the kernels inherit it
        try:
            build(editions, modules=modules)
        finally:
            if before is None:
                os.environ.pop("LAB_CACHE_DIR", None)
            else:
                os.environ["LAB_CACHE_DIR"] = before
        for db in cache.glob("*.sqlite3"):  # fold the write-ahead log into the database file
            conn = sqlite3.connect(db)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
        files = sorted(p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(("-wal", "-shm", ".lock"))
                       and p.name != MANIFEST)
        about = manifest(cache, modules)
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for p in files:
                z.write(p, p.relative_to(cache))
            z.writestr(MANIFEST, json.dumps(about, indent=1, sort_keys=True) + "\n")
    size = out.stat().st_size
    if size > MAX_ZIP_MB * 2 ** 20:
        raise LabError(f"{out} is {size / 2 ** 20:.0f} MB, over the {MAX_ZIP_MB} MB a USB stick hand-out allows")
    return {"path": str(out), "bytes": size, "files": len(files), "manifest": about}


def timed_check(hub=None, cache=None, info: list | None = None) -> tuple[list[str], float]:
    start = time.perf_counter()
    problems = check_machine(hub, cache, info)
    return problems, time.perf_counter() - start
