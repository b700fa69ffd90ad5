"""timm's ViTs inside open_clip's TimmModel (`visual.trunk`): EVA02 (rotary embeddings), SigLIP's
`vit_*_siglip` (no class token: an attention-pooling head), ViTamin's ViT stage after its conv stem.

Attention probabilities come from each block's own attention module: its fused path (scaled dot-product
attention, which returns no probabilities) is switched off on the instance, so the module computes
q and k as it always does (its q/k norms, the rotary embedding) and its softmax passes through
`attn_drop`, whose output (the probabilities, dropout being off in eval) is kept. The pooling head's
latent query has no such point, so its forward is replaced, while a map is computed, by timm's own
unfused computation from its own layers, keeping the probe's probabilities.
"""
from __future__ import annotations

import contextlib

from ._base import TowerFamily, keep_probabilities

__all__ = ["TimmViT"]


@contextlib.contextmanager
def _unfused(modules: list, store: list):
    fused = [m.fused_attn for m in modules]
    handles = [m.attn_drop.register_forward_hook(
        lambda module, inputs, probs: keep_probabilities(store, probs)) for m in modules]
    try:
        for m in modules:
            m.fused_attn = False
        yield store
    finally:
        for m, before, handle in zip(modules, fused, handles):
            m.fused_attn = before
            handle.remove()


def _latent_forward(pool, store: list):
    """timm's AttentionPoolLatent, unfused, keeping the latent queries' probabilities (N, h, Q, L)."""
    def forward(x, attn_mask=None):
        n, length, dim = x.shape
        if pool.pos_embed is not None:
            x = x + pool.pos_embed.unsqueeze(0).to(x.dtype)
        q = pool.q(pool.latent.expand(n, -1, -1)).reshape(n, pool.latent_len, pool.num_heads, pool.head_dim)
        q = q.transpose(1, 2)  # (N, h, Q, d)
        k, v = pool.kv(x).reshape(n, length, 2, pool.num_heads, pool.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = pool.q_norm(q), pool.k_norm(k)
        logits = (q * pool.scale) @ k.transpose(-2, -1)  # (N, h, Q, L)
        if attn_mask is not None:
            logits = logits + attn_mask
        probs = keep_probabilities(store, logits.softmax(-1))
        out = pool.proj_drop(pool.proj((probs @ v).transpose(1, 2).reshape(n, pool.latent_len, dim)))
        if pool.mlp is not None:
            out = out + pool.mlp(pool.norm(out))
        return out[:, 0] if pool.pool == "token" else out.mean(1) if pool.pool == "avg" else out
    return forward


class TimmViT(TowerFamily):
    name, kind = "timm ViT", "vit"

    @classmethod
    def matches(cls, visual) -> bool:
        trunk = getattr(visual, "trunk", None)
        blocks = getattr(trunk, "blocks", None)
        return blocks is not None and hasattr(trunk, "patch_embed") and all(
            hasattr(getattr(b, "attn", None), "fused_attn") and hasattr(b.attn, "attn_drop") for b in blocks)

    @classmethod
    def attention_modules(cls, visual) -> list:
        return [b.attn for b in visual.trunk.blocks]

    @classmethod
    def keep_attention(cls, visual, first: int = 0):
        return _unfused(cls.attention_modules(visual)[first:], [])

    @classmethod
    def grid(cls, visual) -> tuple[int, int]:
        return tuple(visual.trunk.patch_embed.grid_size)

    @classmethod
    def prefix_tokens(cls, visual) -> int:
        return int(visual.trunk.num_prefix_tokens)

    @classmethod
    def pooling(cls, visual) -> str:
        pool = visual.trunk.global_pool
        if pool in ("token", "avg", "map"):
            return pool
        raise NotImplementedError(f"timm ViT with global_pool={pool!r}: relevance reads 'token', 'avg' or 'map'")

    @classmethod
    def pooled_from(cls, visual) -> int:
        return 0 if getattr(visual.trunk, "pool_include_prefix", False) else cls.prefix_tokens(visual)

    @classmethod
    @contextlib.contextmanager
    def keep_probe_attention(cls, visual):
        pool, store = visual.trunk.attn_pool, []
        saved = vars(pool).get("forward")
        pool.forward = _latent_forward(pool, store)
        try:
            yield store
        finally:
            if saved is None:
                vars(pool).pop("forward", None)
            else:
                pool.forward = saved

    @classmethod
    def gradcam_layer(cls, visual) -> str | None:
        """A hybrid's convolutional stem (ViTamin's MbConv stages): its last stage."""
        backbone = getattr(visual.trunk.patch_embed, "backbone", None)
        stages = getattr(backbone, "stages", None)
        return f"trunk.patch_embed.backbone.stages.{len(stages) - 1}" if stages is not None else None

