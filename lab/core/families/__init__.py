"""Image-tower families: what a study needs to know about a tower, one adapter per architecture.

    family = family_of(model.module.visual)   # a TowerFamily subclass
    family.kind                               # "vit", "cnn" or "other"
    with family.keep_attention(visual) as attentions: ...   # (N, heads, L, L) per block, with gradients
    family.grid(visual), family.prefix_tokens(visual), family.pooling(visual)   # "token" | "avg" | "map"
    family.gradcam_layer(visual)              # the module Grad-CAM reads by default
    list_families()

Add a family: one module here with a TowerFamily subclass, one entry in FAMILIES (before any family
it is a special case of), and a row in tests/core/test_model_matrix.py (docs/ARCHITECTURE.md's recipe).
Imports torch: the studies import this, `import lab` does not.
"""
from __future__ import annotations

from ._base import TowerFamily
from .open_clip_resnet import OpenClipResNet
from .open_clip_vit import OpenClipViT
from .timm_cnn import TimmCNN
from .timm_vit import TimmViT
from .transformers_vit import TransformersViT

__all__ = ["FAMILIES", "TowerFamily", "family_of", "list_families"]

FAMILIES: list[type[TowerFamily]] = [OpenClipViT, OpenClipResNet, TimmViT, TimmCNN, TransformersViT]


def family_of(visual) -> type[TowerFamily]:
    """The first family whose `matches` accepts the tower; TowerFamily itself (pixel methods only) else."""
    return next((f for f in FAMILIES if f.matches(visual)), TowerFamily)


def list_families() -> list[str]:
    return [f.name for f in FAMILIES]
