"""CLIP Lab: load any CLIP, encode images and texts through a persistent embedding cache.

    import lab
    model = lab.load_model("lab-vit-tiny")        # or "ViT-B/32", a file, "hf-hub:..."
    image_emb = model.encode_images(paths)         # (N, D) float32, L2-normalized
    text_emb = model.encode_texts(["a photo of a cat"])

Names are imported on first use, so `python -m lab report` and `cache info` start without torch.
The package: lab.core (models, encoding, cache, memo), lab.data (datasets), lab.studies (one module
per study), lab.training, lab.dist (Ray), and the front end here (cli, report, notebook, workshop);
docs/ARCHITECTURE.md says what may import what.
Importing lab sets the thread policy (lab.threads: fair CPU sharing) before torch or numpy load.
"""
from importlib import import_module

from . import _imports, _moved, threads
from .errors import BadInput, LabError, ModelNotAvailable, UnsafeCheckpoint

threads.configure()  # before any OpenMP / BLAS runtime loads: see lab/threads.py
_moved.install()
_imports.skip()  # an optional parser jsonschema would build in every kernel (lab/_imports.py)

_LAZY = {"EmbeddingCache": ".core.cache", "default_cache_dir": ".core.cache", "Failure": ".core.encoding",
         "ClipModel": ".core.models", "load_model": ".core.models",
         "list_models": ".core.registry", "list_pretrained": ".core.registry", "model_info": ".core.registry"}
_PACKAGES = ["core", "data", "studies", "training", "dist", "workshop"]  # lab.studies etc.: imported on first use

__all__ = ["load_model", "list_models", "list_pretrained", "model_info", "ClipModel", "EmbeddingCache", "default_cache_dir",
           "Failure", "LabError", "BadInput", "ModelNotAvailable", "UnsafeCheckpoint"]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    if name in _PACKAGES:
        return import_module(f".{name}", __name__)
    if f"{__name__}.{name}" in _moved.MOVED:  # lab.zeroshot and the other paths before the regrouping
        return _moved.moved(f"{__name__}.{name}")
    raise AttributeError(f"module 'lab' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
