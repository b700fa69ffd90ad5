"""Offline rooms: check a learner's machine, and pre-compute everything the modules use.

    python -m lab workshop check                    # one line per problem, each with its fix (<= 30 s)
    python -m lab workshop prepare --out cache.zip  # every embedding and map the modules compute

`prepare` runs the solution edition of every module against an empty cache folder and zips that
folder; learners unzip it into their cache folder (`$LAB_CACHE_DIR` or ~/.cache/clip-lab) and
the first run of each module reads instead of computing.
"""
from __future__ import annotations

import importlib
import os
import sqlite3
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from ..errors import LabError

__all__ = ["PACKAGES", "MODELS", "MAX_ZIP_MB", "check_machine", "prepare", "timed_check"]

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
    wanted = {"@jupyter-widgets/jupyterlab-manager": "jupyterlab_widgets", "jupyterlab-plotly": "plotly"}
    problems = []
    for ext, dist in wanted.items():
        if not any((Path(p) / "labextensions" / ext).is_dir() for p in jupyter_path()):
            problems.append(f"JupyterLab extension {ext} is missing (widgets/figures would not show): "
                            f"pip install {dist}, then restart JupyterLab")
    return problems


def check_machine() -> list[str]:
    """Every problem found, one line each with its fix (empty: ready)."""
    problems = _packages()
    for step in (_cache, _kernel, _widgets_front_end):
        problems += step()
    if not any(p.startswith("package torch") or p.startswith("package open_clip") for p in problems):
        problems += _models()
    return problems


def prepare(out: str | Path = "cache.zip", modules: list[str] | None = None) -> dict:
    """Execute the solutions against a fresh cache folder and zip it -> {path, bytes, files}."""
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
        files = sorted(p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(("-wal", "-shm", ".lock")))
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for p in files:
                z.write(p, p.relative_to(cache))
    size = out.stat().st_size
    if size > MAX_ZIP_MB * 2 ** 20:
        raise LabError(f"{out} is {size / 2 ** 20:.0f} MB, over the {MAX_ZIP_MB} MB a USB stick hand-out allows")
    return {"path": str(out), "bytes": size, "files": len(files)}


def timed_check() -> tuple[list[str], float]:
    start = time.perf_counter()
    problems = check_machine()
    return problems, time.perf_counter() - start
