"""The residual stream of a class-token transformer at its pooled token, split into what each part writes:
the embedding stream, each attention head (with its share of the output bias), each MLP, and with
tokens_from=l each head's part per token in layers l onwards. lab.studies.decomposition carries these
parts through the final LayerNorm and projection; this module only reads towers.

    s = open_clip_stream(blocks, x, rows, attn_mask, tokens_from)   # open_clip's Transformer (image or text)
    s = timm_stream(visual, pixels, tokens_from)                    # timm's ViT / EVA inside open_clip's TimmModel
    s.embed (N, W), s.heads (N, layers, H, W), s.mlps (N, layers, W), s.tokens (N, layers - l, H, T, W)
    final_of(visual, pooled)                                   # (ln, proj, bias): what follows the stream

open_clip's blocks are recomputed from their own weights (nn.MultiheadAttention has nothing to hook
inside). timm's run as they are, with hooks: each head's output before the output projection, its
probabilities from the family adapter's unfused attention, and its values from the module's own weights.
EVA's inner LayerNorm (after the heads are concatenated) has its mean and scale frozen per token, so each
head's share of it stays a sum, the same rule as the final LayerNorm.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core.families import TimmViT
from ..errors import BadInput

__all__ = ["Stream", "branch_scale", "final_of", "inner_scale", "open_clip_stream", "output_maps", "text_tower",
           "timm_decomposable", "timm_stream", "value_weight"]


@dataclass
class Stream:
    """pooled (N, W): the residual stream at the pooled token after the last block; its parts embed (N, W),
    heads (N, layers, H, W), mlps (N, layers, W), tokens (N, layers - tokens_from, H, T, W) or None; the final
    LayerNorm `ln` and the affine map after it: `proj` (W, D) and `bias` (D,)."""
    pooled: torch.Tensor
    embed: torch.Tensor
    heads: torch.Tensor
    mlps: torch.Tensor
    tokens: torch.Tensor | None
    ln: torch.nn.LayerNorm
    proj: torch.Tensor
    bias: torch.Tensor


def text_tower(module):
    """open_clip's causal text tower, pooled at the end-of-text token (the largest id), that text relevance
    and the text decomposition read: CLIP's own, or CustomTextCLIP's `.text`; None for the others (CoCa's
    pools a class token, transformers' towers run through their own modules)."""
    tower = getattr(module, "text", module)
    pool = getattr(tower, "pool_type", getattr(module, "text_pool_type", None))
    blocks = getattr(getattr(tower, "transformer", None), "resblocks", None)
    return tower if blocks is not None and hasattr(tower, "token_embedding") and pool == "argmax" else None


# -- open_clip: nn.MultiheadAttention blocks, recomputed ---------------------------------------------

def _head_values(block, h: torch.Tensor, attn_mask):
    """One block's attention at every query: probabilities (N, H, L, L) and each head's values through its
    slice of the output projection (N, H, L, W), computed from the block's own weights."""
    mha = block.attn
    n, length, width = h.shape
    heads, d = mha.num_heads, width // mha.num_heads
    q, k, v = F.linear(h, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
    q, k, v = (t.reshape(n, length, heads, d).transpose(1, 2) for t in (q, k, v))  # (N, H, L, d)
    logits = q @ k.transpose(-2, -1) / math.sqrt(d)
    if attn_mask is not None:
        logits = logits + attn_mask
    probs = logits.softmax(-1)  # (N, H, L, L)
    w_o = mha.out_proj.weight.reshape(width, heads, d).permute(1, 2, 0)  # (H, d, W)
    return probs, v @ w_o  # (N, H, L, W): each token's value through each head's projection


def open_clip_stream(blocks, x: torch.Tensor, rows: torch.Tensor, attn_mask, tokens_from: int | None, ln,
                     proj) -> Stream:
    """open_clip's residual blocks run on x (N, L, W), the parts kept at the pooled positions rows (N,);
    ln: the final LayerNorm, proj: the projection after it (a matrix, an nn.Linear or None)."""
    n = len(x)
    pick, rows = torch.arange(n, device=x.device), rows.to(x.device)
    embed, heads, mlps, per_token = x[pick, rows], [], [], []
    for l, block in enumerate(blocks):
        probs, values = _head_values(block, block.ln_1(x), attn_mask)  # (N, H, L, L), (N, H, L, W)
        bias = block.attn.out_proj.bias / probs.shape[1]  # (W,) each head's share
        weights = probs[pick, :, rows]  # (N, H, L): the pooled row's attention
        heads.append((torch.einsum("nht,nhtw->nhw", weights, values) + bias) * branch_scale(block, 1))
        if tokens_from is not None and l >= tokens_from:
            per_token.append((weights[..., None] * values + bias / probs.shape[-1]) * branch_scale(block, 1))
        attended = torch.einsum("nhqt,nhtw->nqw", probs, values) + block.attn.out_proj.bias  # (N, L, W)
        x = x + attended * branch_scale(block, 1)
        mlp = block.mlp(block.ln_2(x)) * branch_scale(block, 2)  # (N, L, W)
        mlps.append(mlp[pick, rows])
        x = x + mlp
    proj, bias = _affine([_as_module(proj)], x.shape[-1], x)
    return Stream(x[pick, rows], embed, torch.stack(heads, 1), torch.stack(mlps, 1),
                  torch.stack(per_token, 1) if per_token else None, ln, proj, bias)


def _as_module(proj):
    """open_clip's projection: a (W, D) matrix, an nn.Linear, or None (no projection)."""
    if proj is None:
        return torch.nn.Identity()
    if isinstance(proj, torch.nn.Module):
        return proj
    return lambda x: x @ proj


# -- timm: ViT and EVA blocks, hooked ----------------------------------------------------------------

def _timm_kinds():
    from timm.layers import Attention
    from timm.models.eva import EvaAttention, EvaBlock
    from timm.models.vision_transformer import Block
    return (Block, EvaBlock), (Attention, EvaAttention)


def _final_modules(visual) -> list:
    """The modules after the final LayerNorm: timm's head (and its dropout), open_clip's projection head."""
    trunk = visual.trunk
    return [trunk.head_drop, trunk.head, *visual.head.children()]


def timm_decomposable(visual) -> str | None:
    """Why a timm tower's embedding is not a sum of its blocks' parts at the class token; None: it is."""
    trunk = getattr(visual, "trunk", None)
    blocks, attentions = _timm_kinds()
    if trunk is None or not hasattr(trunk, "blocks") or not all(type(b) in blocks for b in trunk.blocks):
        return "its blocks are not timm's pre-norm ViT or EVA blocks"
    if getattr(trunk, "global_pool", None) != "token" or getattr(trunk, "cls_token", None) is None:
        return f"it pools with {getattr(trunk, 'global_pool', None)!r}, not a class token"
    if any(type(b.attn) not in attentions or getattr(b.attn, "gate", None) is not None for b in trunk.blocks):
        return "its attention is gated or not timm's Attention / EvaAttention"
    norms = [m for m in (trunk.norm, trunk.fc_norm) if not isinstance(m, torch.nn.Identity)]
    if len(norms) != 1 or not isinstance(norms[0], torch.nn.LayerNorm):
        return "its final normalization is not one LayerNorm"
    if any(not isinstance(m, (torch.nn.Linear, torch.nn.Dropout, torch.nn.Identity)) for m in _final_modules(visual)):
        return "its projection head is not linear"
    return None


def _affine(modules, width: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Affine modules (linear, dropout in eval mode, identity) as x @ proj + bias: proj (W, D), bias (D,)."""
    def run(x):
        for m in modules:
            x = m(x)
        return x
    bias = run(torch.zeros(1, width, dtype=like.dtype, device=like.device))[0]
    return run(torch.eye(width, dtype=like.dtype, device=like.device)) - bias, bias


def value_weight(attn) -> torch.Tensor:
    """The value projection's weight (H*d, W): nn.MultiheadAttention's, timm's fused qkv or EVA's v_proj."""
    if isinstance(attn, torch.nn.MultiheadAttention):
        return attn.in_proj_weight.chunk(3)[2]
    if getattr(attn, "v_proj", None) is not None:
        return attn.v_proj.weight
    return attn.qkv.weight.chunk(3)[2]


def _values(attn, x: torch.Tensor) -> torch.Tensor:
    """The values (N, H, T, d) a timm attention module computes from its input x (N, T, W), from its weights."""
    n, length, _ = x.shape
    if getattr(attn, "v_proj", None) is not None:  # EVA with separate projections
        bias = attn.v_proj.bias
    else:
        bias = attn.qkv.bias.chunk(3)[2] if attn.qkv.bias is not None else getattr(attn, "v_bias", None)
    v = F.linear(x, value_weight(attn), bias)
    return v.reshape(n, length, attn.num_heads, -1).transpose(1, 2)


def branch_scale(block, branch: int) -> torch.Tensor | float:
    """A block's layer scale on its attention (branch 1) or MLP (branch 2) output: open_clip's ls_1 / ls_2,
    timm ViT's ls1 / ls2, EVA's gamma_1 / gamma_2, or 1."""
    for name in (f"ls_{branch}", f"ls{branch}"):
        if hasattr(block, name):
            return getattr(getattr(block, name), "gamma", 1.0)
    gamma = getattr(block, f"gamma_{branch}", None)
    return gamma if gamma is not None else 1.0


def output_maps(attn) -> tuple[torch.Tensor, torch.Tensor]:
    """An attention module's output per head: (H, d, W) maps from a head's d channels to the residual, the
    inner LayerNorm's gain folded in, and what that norm's centring removes per unit of any channel, through
    the projection (W,) (zeros: no inner norm). nn.MultiheadAttention (open_clip) or timm's modules."""
    if isinstance(attn, torch.nn.MultiheadAttention):
        weight, norm = attn.out_proj.weight, torch.nn.Identity()
    else:
        weight, norm = attn.proj.weight, attn.norm  # (W, H*d)
    heads, d = attn.num_heads, weight.shape[1] // attn.num_heads
    if isinstance(norm, torch.nn.LayerNorm):
        gain = norm.weight if norm.weight is not None else torch.ones_like(weight[0])
        return (gain[:, None] * weight.T).reshape(heads, d, -1), (gain @ weight.T) / (heads * d)
    if isinstance(norm, torch.nn.Identity):
        return weight.T.reshape(heads, d, -1), torch.zeros_like(weight[:, 0])
    raise BadInput(f"{type(norm).__name__} inside attention: only a LayerNorm or none keeps the heads a sum")


def inner_scale(attn, z_row: torch.Tensor) -> torch.Tensor:
    """The inner LayerNorm's scale at the pooled token (N,), frozen; ones without one."""
    norm = getattr(attn, "norm", None)
    if isinstance(norm, torch.nn.LayerNorm):
        return torch.sqrt(z_row.var(-1, unbiased=False) + norm.eps)
    return torch.ones_like(z_row[:, 0])


def _through_heads(attn, z_row: torch.Tensor, u: torch.Tensor, share: float) -> torch.Tensor:
    """Per-head pieces u (N, H, ..., d) of the heads' concatenated output, whose sum over the pieces is z_row
    (N, H*d) at the pooled token, through the module's inner LayerNorm (if any; its mean and scale frozen at
    z_row) and output projection -> (N, H, ..., W); the biases are shared out as `share` of each head's."""
    per_head, centre = output_maps(attn)
    extra = (slice(None),) + (None,) * (u.dim() - 1)
    out = (torch.einsum("nh...d,hdw->nh...w", u, per_head) - u.sum(-1, keepdim=True) * centre) / \
        inner_scale(attn, z_row)[extra]
    norm_bias = attn.norm.bias @ attn.proj.weight.T if isinstance(attn.norm, torch.nn.LayerNorm) and \
        attn.norm.bias is not None else 0.0
    proj_bias = attn.proj.bias if attn.proj.bias is not None else 0.0
    return out + (norm_bias + proj_bias) / attn.num_heads * share


@contextlib.contextmanager
def _hooks(trunk, seen: dict):
    """Keep the first block's input, every block's output, every attention's input, output and heads'
    concatenated output (the input of its inner norm)."""
    def keep(key):
        return lambda m, args, out=None: seen[key].append(args[0] if out is None else out)
    handles = [trunk.blocks[0].register_forward_pre_hook(keep("embed"))]
    for block in trunk.blocks:
        handles += [block.register_forward_hook(keep("out")), block.attn.register_forward_pre_hook(keep("attn_in")),
                    block.attn.register_forward_hook(keep("attn_out")),
                    block.attn.norm.register_forward_pre_hook(keep("z"))]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def timm_stream(visual, pixels: torch.Tensor, tokens_from: int | None) -> Stream:
    """timm's ViT or EVA (inside open_clip's TimmModel) run on pixels (N, 3, H, W), its parts kept at the
    class token (token 0)."""
    why = timm_decomposable(visual)
    if why:
        raise BadInput(f"this timm tower's embedding is not a sum of parts at its class token: {why}")
    trunk = visual.trunk
    seen = {key: [] for key in ("embed", "out", "attn_in", "attn_out", "z")}
    attention = TimmViT.keep_attention(visual, tokens_from) if tokens_from is not None else contextlib.nullcontext([])
    with _hooks(trunk, seen), attention as probs:
        visual(pixels)
    inputs = seen["embed"] + seen["out"][:-1]
    heads, mlps, per_token = [], [], []
    for l, block in enumerate(trunk.blocks):
        attn, gamma = block.attn, branch_scale(block, 1)
        z_row = seen["z"][l][:, 0]  # (N, H*d): the heads' concatenated output at the class token
        u = z_row.reshape(len(z_row), attn.num_heads, -1)  # (N, H, d)
        heads.append(_through_heads(attn, z_row, u, 1.0) * gamma)
        if tokens_from is not None and l >= tokens_from:
            weights = probs[l - tokens_from][:, :, 0]  # (N, H, T): the class token's attention
            through = weights[..., None] * _values(attn, seen["attn_in"][l])  # (N, H, T, d)
            per_token.append(_through_heads(attn, z_row, through, 1.0 / weights.shape[-1]) * gamma)
        mlps.append(seen["out"][l][:, 0] - inputs[l][:, 0] - gamma * seen["attn_out"][l][:, 0])
    pooled = seen["out"][-1][:, 0]
    ln, proj, bias = final_of(visual, pooled)
    return Stream(pooled, seen["embed"][0][:, 0], torch.stack(heads, 1), torch.stack(mlps, 1),
                  torch.stack(per_token, 1) if per_token else None, ln, proj, bias)


# -- the final LayerNorm and what follows it ---------------------------------------------------------

def final_of(visual, like: torch.Tensor) -> tuple:
    """The image tower's final LayerNorm and the affine map after it: (ln, proj (W, D), bias (D,))."""
    if hasattr(visual, "trunk"):
        trunk = visual.trunk
        ln = trunk.norm if isinstance(trunk.fc_norm, torch.nn.Identity) else trunk.fc_norm
        return (ln, *_affine(_final_modules(visual), like.shape[-1], like))
    return (visual.ln_post, *_affine([_as_module(visual.proj)], like.shape[-1], like))
