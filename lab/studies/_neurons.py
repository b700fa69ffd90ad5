"""What each MLP neuron of a class-token ViT writes into the embedding: directly at the class token, and
carried there from every token by the later layers' heads (the second-order effect, Gandelsman et al.,
ICLR 2025). lab.studies.decomposition carries the writes through the final LayerNorm and projection.

    n = read_neurons(visual, pixels, layers)   # one run: n.writes(l) (N, neurons, W) at the class token
    n = read_neurons(visual, pixels, layers, carried=True)   # + what the later heads read
    second_order(visual, n, l)                 # (N, neurons, W): layer l's neurons through the later heads

A neuron writes its activation times its column of the MLP's output projection (and layer scale). A norm
before that projection (EVA02-CLIP's SwiGLU) has its mean and scale frozen per token, so the neurons'
writes still sum to the MLP's output less its biases. The second-order path freezes each later block's
first LayerNorm per token, its attention probabilities and its inner norm, as `_streams` does for heads.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ..core.families import family_of
from ..errors import BadInput
from ._streams import branch_scale, inner_scale, output_maps, value_weight

__all__ = ["Neurons", "blocks_of", "mlp_output", "read_neurons", "second_order"]


def mlp_output(mlp):
    """The MLP's output projection (what each neuron writes through) and the norm before it, if any."""
    if hasattr(mlp, "c_proj"):  # open_clip
        return mlp.c_proj, torch.nn.Identity()
    return mlp.fc2, mlp.norm


@dataclass
class Neurons:
    """What the MLP neurons of `layers` write, from one run of the tower: at every token t, neuron k writes
    scalars[l][:, t, k] times columns[l][k] (W,) into the residual stream (its activation, or for EVA02's
    SwiGLU its input to the inner LayerNorm over that norm's frozen scale, times its output column, gain and
    layer scale). pooled (N, W): the stream at the class token after the last block; inputs: every block's
    input (N, T, W); probs: every block's class-token attention (N, H, T); z_rows: each attention's heads
    at the class token before its inner norm (N, H*d)."""
    pooled: torch.Tensor
    scalars: dict
    columns: dict
    inputs: list
    probs: list
    z_rows: list

    def writes(self, layer: int) -> torch.Tensor:
        """(N, neurons, W): what each neuron of `layer` writes at the class token."""
        return self.scalars[layer][:, 0, :, None] * self.columns[layer]


def blocks_of(visual) -> list:
    return list(visual.trunk.blocks if hasattr(visual, "trunk") else visual.transformer.resblocks)


def read_neurons(visual, pixels: torch.Tensor, layers: list[int], carried: bool = False) -> Neurons:
    """Run the image tower on pixels (N, 3, H, W) once, keeping what `Neurons` holds; inputs, probs and
    z_rows (what `second_order` reads: the class-token attention through the family adapter, its fused
    path off) only with carried=True, empty otherwise."""
    blocks = blocks_of(visual)
    seen = {key: [] for key in ("inputs", "z")}
    acts = {}
    handles = []
    for block in blocks if carried else []:
        handles.append(block.register_forward_pre_hook(lambda m, args: seen["inputs"].append(args[0])))
        if not isinstance(block.attn, torch.nn.MultiheadAttention):
            handles.append(block.attn.norm.register_forward_pre_hook(lambda m, args: seen["z"].append(args[0][:, 0])))
    handles.append(blocks[-1].register_forward_hook(lambda m, args, out: seen.__setitem__("pooled", out[:, 0])))
    for l in layers:
        fc, norm = mlp_output(blocks[l].mlp)
        handles += [fc.register_forward_pre_hook(lambda m, args, l=l: acts.__setitem__(("act", l), args[0])),
                    norm.register_forward_pre_hook(lambda m, args, l=l: acts.__setitem__(("pre", l), args[0]))]
    attention = family_of(visual).keep_attention(visual) if carried else contextlib.nullcontext([])
    try:
        with attention as probs:
            if hasattr(visual, "trunk"):
                visual(pixels)
            else:
                x = visual._embeds(pixels)  # (N, T, W)
                for block in blocks:
                    x = block(x)
    finally:
        for h in handles:
            h.remove()
    scalars, columns = {}, {}
    for l in layers:
        fc, norm = mlp_output(blocks[l].mlp)
        gamma = branch_scale(blocks[l], 2)
        if isinstance(norm, torch.nn.LayerNorm):  # frozen per token: each neuron's share of it is a sum
            pre = acts[("pre", l)]  # (N, T, neurons): the norm's input
            gain = norm.weight if norm.weight is not None else torch.ones_like(pre[0, 0])
            scalars[l] = pre / torch.sqrt(pre.var(-1, unbiased=False, keepdim=True) + norm.eps)
            columns[l] = (gain[:, None] * fc.weight.T - (fc.weight @ gain / pre.shape[-1])[None]) * gamma
        elif isinstance(norm, torch.nn.Identity):
            scalars[l], columns[l] = acts[("act", l)], fc.weight.T * gamma  # (N, T, neurons), (neurons, W)
        else:
            raise BadInput(f"{type(norm).__name__} before an MLP's output: only a LayerNorm or none keeps it a sum")
    return Neurons(seen["pooled"], scalars, columns, seen["inputs"], [p[:, :, 0] for p in probs], seen["z"])


def second_order(visual, neurons: Neurons, layer: int) -> torch.Tensor:
    """What each neuron of `layer` writes at every token, carried by every later layer's heads to the class
    token (Gandelsman et al. 2025's second-order effect): each later block's first LayerNorm frozen per
    token, its attention probabilities and inner norm frozen, the biases left out -> (N, neurons, W).
    `neurons`: read_neurons(..., carried=True)."""
    blocks = blocks_of(visual)
    scalars, column = neurons.scalars[layer], neurons.columns[layer]  # (N, T, k), (k, W)
    total = torch.zeros(*scalars.shape[::2], column.shape[-1], dtype=column.dtype, device=column.device)
    for later in range(layer + 1, len(blocks)):
        block = blocks[later]
        attn, ln = block.attn, block.ln_1 if hasattr(block, "ln_1") else block.norm1
        x = neurons.inputs[later]  # (N, T, W)
        token_scale = torch.sqrt(x.var(-1, unbiased=False) + ln.eps)  # (N, T)
        y = (column - column.mean(-1, keepdim=True)) * ln.weight  # (k, W): a unit write through the LayerNorm
        v = (y @ value_weight(attn).T).reshape(len(y), attn.num_heads, -1).transpose(0, 1)  # (H, k, d)
        per_head, centre = output_maps(attn)
        out = (torch.einsum("hkd,hdw->hkw", v, per_head) - v.sum(-1, keepdim=True) * centre) * branch_scale(block, 1)
        z_scale = inner_scale(attn, neurons.z_rows[later]) if neurons.z_rows else x.new_ones(len(x))
        weights = torch.einsum("nht,ntk->nhk", neurons.probs[later], scalars / token_scale[..., None])  # (N, H, k)
        total += torch.einsum("nhk,hkw->nkw", weights / z_scale[:, None, None], out)
    return total
