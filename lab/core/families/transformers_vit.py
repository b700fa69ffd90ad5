"""transformers' ViT towers (SigLIP, SigLIP 2, MetaCLIP 2, a CLIP run as transformers has it), behind the
lab's TransformersCLIP: `visual` is the vision model (embeddings, encoder.layers, an attention-pooling
head for SigLIP).

Attention probabilities come from transformers itself: while a map is computed the tower's config asks
for the eager attention (`_attn_implementation = "eager"`), whose attention modules return their
probabilities, which a forward hook keeps. SigLIP's head (a probe attending over the patches through an
nn.MultiheadAttention) runs the lab's explicit attention on its own weights.
"""
from __future__ import annotations

import contextlib

import torch

from ._base import TowerFamily, explicit_attention_of

__all__ = ["TransformersViT"]


def _layers(visual) -> list:
    return list(visual.encoder.layers)


@contextlib.contextmanager
def _eager(visual, first: int, store: list):
    configs = {id(layer.self_attn.config): layer.self_attn.config for layer in _layers(visual)}
    before = {k: c._attn_implementation for k, c in configs.items()}

    def keep(module, inputs, out):
        store.append(out[1])  # (N, h, L, L) probabilities, in the graph (the embeddings start it)

    def start_graph(module, inputs, out):
        return out.requires_grad_() if torch.is_grad_enabled() and not out.requires_grad else out
    handles = [layer.self_attn.register_forward_hook(keep) for layer in _layers(visual)[first:]]
    handles.append(visual.embeddings.register_forward_hook(start_graph))
    try:
        for c in configs.values():
            c._attn_implementation = "eager"
        yield store
    finally:
        for k, c in configs.items():
            c._attn_implementation = before[k]
        for h in handles:
            h.remove()


class TransformersViT(TowerFamily):
    name, kind = "transformers ViT", "vit"

    @classmethod
    def matches(cls, visual) -> bool:
        return hasattr(visual, "encoder") and hasattr(getattr(visual, "embeddings", None), "patch_embedding")

    @classmethod
    def attention_modules(cls, visual) -> list:
        return [layer.self_attn for layer in _layers(visual)]

    @classmethod
    def keep_attention(cls, visual, first: int = 0):
        return _eager(visual, first, [])

    @classmethod
    def grid(cls, visual) -> tuple[int, int]:
        side = visual.config.image_size // visual.config.patch_size
        return side, side

    @classmethod
    def prefix_tokens(cls, visual) -> int:
        return 1 if hasattr(visual.embeddings, "class_embedding") else 0

    @classmethod
    def pooling(cls, visual) -> str:
        return "map" if getattr(visual, "head", None) is not None and getattr(visual, "use_head", True) else "token"

    @classmethod
    def keep_probe_attention(cls, visual):
        return explicit_attention_of([visual.head.attention], [])
