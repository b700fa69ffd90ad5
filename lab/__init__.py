"""CLIP Lab: load any CLIP, encode images and texts through a persistent embedding cache.

    import lab
    model = lab.load_model("lab-vit-tiny")        # or "ViT-B/32", a file, "hf-hub:..."
    image_emb = model.encode_images(paths)         # (N, D) float32, L2-normalized
    text_emb = model.encode_texts(["a photo of a cat"])
"""
from .cache import EmbeddingCache, default_cache_dir
from .encoding import Failure
from .errors import BadInput, LabError, ModelNotAvailable, UnsafeCheckpoint
from .models import ClipModel, load_model
from .registry import list_models, list_pretrained, model_info

__all__ = ["load_model", "list_models", "list_pretrained", "model_info", "ClipModel", "EmbeddingCache", "default_cache_dir",
           "Failure", "LabError", "BadInput", "ModelNotAvailable", "UnsafeCheckpoint"]
