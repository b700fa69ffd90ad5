"""open_clip's VisionTransformer (OpenAI's ViTs, LAION's, CoCa's, and transformers CLIP checkpoints,
which the lab remaps into it): a class token, nn.MultiheadAttention blocks, and either the class token
or an attentional pooler (CoCa) as the embedding."""
from __future__ import annotations

from ._base import TowerFamily, explicit_attention_of

__all__ = ["OpenClipViT"]


class OpenClipViT(TowerFamily):
    name, kind = "open_clip ViT", "vit"

    @classmethod
    def matches(cls, visual) -> bool:
        return hasattr(visual, "transformer") and hasattr(visual, "class_embedding")

    @classmethod
    def attention_modules(cls, visual) -> list:
        return [b.attn for b in visual.transformer.resblocks]

    @classmethod
    def keep_attention(cls, visual, first: int = 0):
        return explicit_attention_of(cls.attention_modules(visual)[first:], [])

    @classmethod
    def grid(cls, visual) -> tuple[int, int]:
        return tuple(visual.grid_size)

    @classmethod
    def prefix_tokens(cls, visual) -> int:
        return 1

    @classmethod
    def pooling(cls, visual) -> str:
        return "map" if getattr(visual, "attn_pool", None) is not None else "token"

    @classmethod
    def pooled_from(cls, visual) -> int:
        return 0  # CoCa's attentional pooler attends over every token, the class token included

    @classmethod
    def keep_probe_attention(cls, visual):
        """CoCa: the embedding is the attentional pooler's first query (open_clip's 'tok' pooling of its
        output); its cross-attention runs explicitly and its (N, heads, queries, L) is kept."""
        pool = visual.attn_pool_contrastive if getattr(visual, "attn_pool_contrastive", None) is not None \
            else visual.attn_pool
        return explicit_attention_of([pool.attn], [])
