"""What every image-tower family adapter answers, and the explicit attention they share.

A family is a class with class methods (no state: the tower is passed in). ViT families answer
`attention_modules`, `keep_attention`, `grid`, `prefix_tokens`, `pooling` and, when the embedding is an
attention pool's output, `keep_probe_attention`; CNN towers (and hybrids' convolutional stems) answer
`gradcam_layer`. The defaults say "not this kind".
"""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from ...errors import BadInput

__all__ = ["TowerFamily", "explicit_attention", "explicit_attention_of", "keep_probabilities"]


class TowerFamily:
    """One kind of image tower. `kind`: "vit" (attention relevance and rollout), "cnn" (Grad-CAM) or
    "other" (pixel methods only)."""
    name = "other"
    kind = "other"

    @classmethod
    def matches(cls, visual) -> bool:
        return False

    # -- ViTs ---------------------------------------------------------------------------------
    @classmethod
    def attention_modules(cls, visual) -> list:
        """The self-attention module of every block, in order."""
        return []

    @classmethod
    def keep_attention(cls, visual, first: int = 0):
        """A context in which blocks from `first` on keep their attention probabilities, with their
        gradients: yields the list they are appended to, one (N, heads, L, L) per block."""
        raise BadInput(f"{cls.name} towers have no attention blocks to read")

    @classmethod
    def grid(cls, visual) -> tuple[int, int]:
        """Patch tokens per column and per row (rows, cols)."""
        raise BadInput(f"{cls.name} towers have no patch grid")

    @classmethod
    def prefix_tokens(cls, visual) -> int:
        """Tokens before the patches (class token, registers)."""
        return 0

    @classmethod
    def pooling(cls, visual) -> str:
        """How the image embedding reads the tokens: "token" (the first prefix token), "avg" (the mean
        of the patch tokens) or "map" (an attention pool's probe, `keep_probe_attention`)."""
        return "token"

    @classmethod
    def pooled_from(cls, visual) -> int:
        """The first token the pooling reads ("avg": the first token of the mean; "map": the probe's first
        key): the first patch, unless the pooling reads the prefix tokens too."""
        return cls.prefix_tokens(visual)

    @classmethod
    def keep_probe_attention(cls, visual):
        """A context that keeps the attention pool's probabilities of its probes over the tokens: yields
        a list that receives one (N, heads, queries, L); the embedding is the first query's output."""
        raise BadInput(f"{cls.name} towers have no attention pool")

    # -- CNNs and hybrids ------------------------------------------------------------------------
    @classmethod
    def gradcam_layer(cls, visual) -> str | None:
        """The module name (in the tower) whose output Grad-CAM reads by default; None: no Grad-CAM."""
        return None


def _projections(mha: torch.nn.MultiheadAttention, query, key, value):
    """q, k, v as the module computes them: one in-projection for self-attention with equal sizes."""
    if mha._qkv_same_embed_dim and query is key and key is value:
        return F.linear(query, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
    if mha._qkv_same_embed_dim:
        w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
    else:
        w_q, w_k, w_v = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
    b_q, b_k, b_v = mha.in_proj_bias.chunk(3) if mha.in_proj_bias is not None else (None, None, None)
    return F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)


def keep_probabilities(store: list, probs: torch.Tensor) -> torch.Tensor:
    """Append attention probabilities to `store` and return them; when nothing upstream needs a gradient
    (the blocks before ran without one), the graph starts here."""
    if torch.is_grad_enabled() and not probs.requires_grad:
        probs.requires_grad_()
    store.append(probs)
    return probs


def explicit_attention(mha: torch.nn.MultiheadAttention, store: list):
    """A forward for one nn.MultiheadAttention (self- or cross-attention) that computes
    softmax(QK^T/sqrt(d)) explicitly from its own weights, keeps the probabilities (N, heads, Lq, Lk) in
    `store`, and returns what the stock module returns (without weights)."""
    def forward(query, key=None, value=None, key_padding_mask=None, need_weights=False, attn_mask=None, **_):
        key = query if key is None else key
        value = key if value is None else value
        if key_padding_mask is not None or mha.bias_k is not None or mha.add_zero_attn:
            raise NotImplementedError("attribution does not handle key padding masks, bias_k or add_zero_attn")
        q_in, k_in, v_in = ((t if mha.batch_first else t.transpose(0, 1)) for t in (query, key, value))  # (N, L, D)
        if query is key and key is value:
            k_in = v_in = q_in
        n, length_q, dim = q_in.shape
        length_k, heads = k_in.shape[1], mha.num_heads
        q, k, v = _projections(mha, q_in, k_in, v_in)
        q = q.reshape(n, length_q, heads, dim // heads).transpose(1, 2)  # (N, h, Lq, d)
        k, v = (t.reshape(n, length_k, heads, dim // heads).transpose(1, 2) for t in (k, v))  # (N, h, Lk, d)
        logits = q @ k.transpose(-2, -1) / math.sqrt(dim // heads)  # (N, h, Lq, Lk)
        if attn_mask is not None:
            if attn_mask.dim() == 3:  # (N * heads, Lq, Lk), as nn.MultiheadAttention accepts it
                attn_mask = attn_mask.reshape(n, heads, length_q, length_k)
            logits = logits.masked_fill(attn_mask, float("-inf")) if attn_mask.dtype == torch.bool \
                else logits + attn_mask
        probs = keep_probabilities(store, logits.softmax(-1))
        out = (probs @ v).transpose(1, 2).reshape(n, length_q, dim)
        out = F.linear(out, mha.out_proj.weight, mha.out_proj.bias)
        return (out if mha.batch_first else out.transpose(0, 1)), None
    return forward


@contextlib.contextmanager
def explicit_attention_of(modules: list, store: list):
    """Within the block, each nn.MultiheadAttention of `modules` runs `explicit_attention` (an instance
    attribute that shadows the class's forward), restored afterwards; the tower's code is not forked."""
    wrong = {type(m).__name__ for m in modules if not isinstance(m, torch.nn.MultiheadAttention)}
    if wrong:  # checked before anything is patched
        raise BadInput(f"attention relevance needs nn.MultiheadAttention blocks; found {sorted(wrong)}")
    saved = [vars(m).get("forward") for m in modules]  # an instance-level forward someone set before us
    try:
        for m in modules:
            m.forward = explicit_attention(m, store)
        yield store
    finally:
        for m, before in zip(modules, saved):
            if before is None:
                vars(m).pop("forward", None)
            else:
                m.forward = before
