"""CLIP Lab: load any CLIP, encode images and texts through a persistent embedding cache.

    import lab
    model = lab.load_model("lab-vit-tiny")        # or "ViT-B/32", a file, "hf-hub:..."
    image_emb = model.encode_images(paths)         # (N, D) float32, L2-normalized
    text_emb = model.encode_texts(["a photo of a cat"])

Names are imported on first use, so `python -m lab report` and `cache info` start without torch.
Importing lab sets the thread policy (lab.threads: fair CPU sharing) before torch or numpy load.
"""
from importlib import import_module

from . import threads
from .errors import BadInput, LabError, ModelNotAvailable, UnsafeCheckpoint

threads.configure()  # before any OpenMP / BLAS runtime loads: see lab/threads.py

_LAZY = {"EmbeddingCache": ".cache", "default_cache_dir": ".cache", "Failure": ".encoding",
         "ClipModel": ".models", "load_model": ".models",
         "list_models": ".registry", "list_pretrained": ".registry", "model_info": ".registry"}

__all__ = ["load_model", "list_models", "list_pretrained", "model_info", "ClipModel", "EmbeddingCache", "default_cache_dir",
           "Failure", "LabError", "BadInput", "ModelNotAvailable", "UnsafeCheckpoint"]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lab' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
