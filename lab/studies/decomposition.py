"""Inside the embedding: CLIP's image (or text) embedding as an exact sum of what each layer, head,
token and neuron writes into it (Gandelsman, Efros & Steinhardt, ICLR 2024), mean ablations, and the
direct effect of MLP neurons.

    d = decompose(model, images)             # d.parts (N, K, D), d.labels: "embed", "L0.H3", "L0.mlp", ...
    d = decompose_dataset(model, dataset)    # the same for a lab dataset, kept in the model's cache folder
    d.parts.sum(1)                           # == model.encode_images(images), to float32 precision
    d = decompose(model, images, tokens=True)   # + d.tokens (N, L, H, T, D): each head's part per image token
    decompose_texts(model, texts)            # the text tower at its end-of-text token
    ablation_curve(d, W, labels)             # zero-shot accuracy, layers mean-ablated from the first on
    neuron_effects(model, images)            # (N, layers, neurons, D) direct effects of every MLP neuron
    class_neurons(model, dataset, W)         # the neurons that write each class most

How the sum is exact. The residual stream at the pooled token is the embedding stream plus, for every
block, its attention output (a sum over heads: each head's attention-weighted values through its
slice of the output projection, plus a share of the output bias) and its MLP output. The final
LayerNorm's mean and scale are frozen per image (centering is linear, and dividing by a fixed
scale is too), its bias and the projection are shared out equally over the parts, and every part is
divided by the final embedding's norm: the parts then sum to the L2-normalized embedding. Per token,
a head's part is its attention weight on that token times the token's value through the head's
projection, plus an equal share of the head's bias: per-token parts sum to their head's part.

For class-token ViTs (open_clip's VisionTransformer: OpenAI's, LAION's, a transformers CLIP the lab
remaps into it; its text transformer for texts); other towers raise BadInput saying why.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..core.images import load_rgb_image
from ..errors import BadInput
from ..threads import fit_torch

__all__ = ["Decomposition", "decomposable", "decompose", "decompose_dataset", "decompose_texts", "token_parts", "mean_ablate",
           "ablation_curve", "head_ablations", "neuron_effects", "class_neurons"]


@dataclass
class Decomposition:
    """parts (N, K, D) float32 summing over K to the L2-normalized embeddings; labels (K,): "embed",
    "L{l}.H{h}" (layer l's head h) and "L{l}.mlp" in the order of the stream; tokens (N, L, H, T, D)
    when asked for: layer l's head h's part through token t (T: every token of the sequence)."""
    parts: np.ndarray
    labels: list[str]
    layers: int
    heads: int
    tokens: np.ndarray | None = None

    def index(self, label: str) -> int:
        return self.labels.index(label)

    def head(self, layer: int, head: int) -> np.ndarray:
        """(N, D) layer `layer`'s head `head`."""
        return self.parts[:, self.index(f"L{layer}.H{head}")]

    def head_map(self, layer: int, head: int, direction: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
        """What each patch token writes through layer `layer`'s head `head` along `direction` (D,) (e.g. a
        text embedding) -> (N, rows, cols); token 0 is the class token, 1 .. rows*cols the patches in row
        order. Needs the per-token parts (decompose(..., tokens=True))."""
        if self.tokens is None:
            raise BadInput("a head's map reads each token's part: decompose the images with tokens=True")
        rows, cols = grid
        along = self.tokens[:, layer, head] @ np.asarray(direction, np.float32)  # (N, T)
        return along[:, 1:1 + rows * cols].reshape(len(along), rows, cols)


def _labels(layers: int, heads: int) -> list[str]:
    return ["embed"] + [f"L{l}.{p}" for l in range(layers) for p in [f"H{h}" for h in range(heads)] + ["mlp"]]


def decomposable(model) -> bool:
    """Whether the image tower is a class-token ViT whose embedding is its class token through the final
    LayerNorm and projection (open_clip's VisionTransformer with 'tok' pooling)."""
    visual = model.module.visual
    return hasattr(visual, "transformer") and hasattr(visual, "class_embedding") and \
        getattr(visual, "attn_pool", None) is None and getattr(visual, "pool_type", "tok") == "tok" and \
        not getattr(visual, "final_ln_after_pool", False)


def _pixels(model, images) -> torch.Tensor:
    """Images -> the model's normalized input pixels (N, 3, H, W) on its device."""
    return torch.stack([model.preprocess(load_rgb_image(im)) for im in images]).to(model.device)


def _check_vit(model):
    visual = model.module.visual
    if not decomposable(model):
        raise BadInput(f"decompose reads a class-token ViT whose embedding is its class token through the final "
                       f"LayerNorm and projection (open_clip's VisionTransformer); {model.name}'s image tower is "
                       f"{type(visual).__name__}{' with an attention pool' if getattr(visual, 'attn_pool', None) else ''}"
                       ", whose embedding is not such a sum")
    return visual


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


def _layer_scale(module, x):
    return module(x) if not isinstance(module, torch.nn.Identity) else x


def _stream(blocks, x: torch.Tensor, rows: torch.Tensor, attn_mask, tokens: bool):
    """Run the blocks on x (N, L, W), keeping at the pooled position rows (N,) the residual-space parts:
    embed (N, W), heads (N, layers, H, W) with the output bias shared over heads, mlp (N, layers, W), and
    with tokens=True each head's part per token (N, layers, H, L, W), the head's bias share spread evenly."""
    n = len(x)
    pick = torch.arange(n)
    embed, heads, mlps, per_token = x[pick, rows], [], [], []
    for block in blocks:
        probs, values = _head_values(block, block.ln_1(x), attn_mask)  # (N, H, L, L), (N, H, L, W)
        bias = block.attn.out_proj.bias / probs.shape[1]  # (W,) each head's share
        weights = probs[pick, :, rows]  # (N, H, L): the pooled row's attention
        head_parts = torch.einsum("nht,nhtw->nhw", weights, values) + bias  # (N, H, W)
        heads.append(_layer_scale(block.ls_1, head_parts))
        if tokens:
            through = weights[..., None] * values + bias / probs.shape[-1]  # (N, H, L, W)
            per_token.append(_layer_scale(block.ls_1, through))
        attended = torch.einsum("nhqt,nhtw->nqw", probs, values) + block.attn.out_proj.bias  # (N, L, W)
        x = x + _layer_scale(block.ls_1, attended)
        mlp = _layer_scale(block.ls_2, block.mlp(block.ln_2(x)))  # (N, L, W)
        mlps.append(mlp[pick, rows])
        x = x + mlp
    return x[pick, rows], embed, torch.stack(heads, 1), torch.stack(mlps, 1), (torch.stack(per_token, 1)
                                                                                 if tokens else None)


def _through_final(ln, proj, pooled, stack: torch.Tensor, count: int) -> torch.Tensor:
    """Residual-space parts (N, ..., W) of a pooled vector (N, W) through the final LayerNorm with its mean
    and scale frozen per image, its bias and the projection shared over `count` parts, over the final
    embedding's norm -> (N, ..., D)."""
    scale = torch.sqrt(pooled.var(-1, unbiased=False) + ln.eps)  # (N,)
    shape = (-1,) + (1,) * (stack.dim() - 1)
    centered = (stack - stack.mean(-1, keepdim=True)) / scale.view(shape) * ln.weight
    parts = centered @ proj + (ln.bias @ proj) / count  # (..., D)
    norm = (ln(pooled) @ proj).norm(dim=-1)  # (N,)
    return parts / norm.view(shape)


def _decompose(blocks, x, rows, attn_mask, ln, proj, tokens: bool, labels_for) -> Decomposition:
    fit_torch()
    with torch.no_grad():
        pooled, embed, heads, mlps, per_token = _stream(blocks, x, rows, attn_mask, tokens)
        n, layers, nheads, _ = heads.shape
        residual = torch.cat([embed[:, None], torch.cat([heads, mlps[:, :, None]], 2).flatten(1, 2)], 1)  # (N, K, W)
        count = residual.shape[1]
        parts = _through_final(ln, proj, pooled, residual, count)
        token_parts = None
        if per_token is not None:  # a head's share of the LayerNorm bias, spread evenly over its tokens
            token_parts = _through_final(ln, proj, pooled, per_token, count * per_token.shape[3]).float().numpy()
    return Decomposition(parts.float().numpy(), labels_for(layers, nheads), layers, nheads, token_parts)


def decompose(model, images, tokens: bool = False, batch_size: int = 32) -> Decomposition:
    """The image embeddings of `images` (paths, PIL images, arrays) as sums of parts (module docstring).
    tokens=True adds each head's part per image token (N, L, H, T, D), computed batch by batch."""
    visual = _check_vit(model)
    images = list(images)
    if not images:
        raise BadInput("decompose needs at least one image")
    out = []
    for s in range(0, len(images), batch_size):
        pixels = _pixels(model, images[s:s + batch_size])
        with torch.no_grad():
            x = visual._embeds(pixels)  # (N, L, W): patches, class token, positions, ln_pre
        rows = torch.zeros(len(x), dtype=torch.long)  # the class token
        out.append(_decompose(visual.transformer.resblocks, x, rows, None, visual.ln_post, visual.proj, tokens, _labels))
    first = out[0]
    return Decomposition(np.concatenate([d.parts for d in out]), first.labels, first.layers, first.heads,
                         np.concatenate([d.tokens for d in out]) if tokens else None)


def decompose_dataset(model, dataset, batch_size: int = 32, cache=True) -> Decomposition:
    """`decompose` over every item of a lab dataset, memoized (lab.core.memo) in the model's cache folder
    under its fingerprint and the dataset's identity: a warm re-run reads the parts back."""
    from ..core import memo
    from ..data import dataset_identity

    def compute() -> dict:
        d = decompose(model, [dataset.source(i) for i in range(len(dataset))], batch_size=batch_size)
        return {"parts": d.parts, "shape": np.array([d.layers, d.heads])}
    where = model.cache.directory if cache is True else cache
    found = memo.memoized("decomposition", [model.fingerprint, dataset_identity(dataset)], compute, where,
                          folder_name="results", code=(__name__,), packages=("torch",), kind="npz")
    layers, heads = (int(v) for v in found["shape"])
    return Decomposition(found["parts"], _labels(layers, heads), layers, heads)


def decompose_texts(model, texts: list[str]) -> Decomposition:
    """The text embeddings as sums of parts at the end-of-text token (the largest id), for open_clip's
    CLIP text transformer."""
    module = model.module
    if not (hasattr(module, "transformer") and hasattr(module, "token_embedding")) or \
            getattr(module, "text_pool_type", None) != "argmax":
        raise BadInput(f"decompose_texts reads open_clip's CLIP text transformer pooled at its end-of-text token; "
                       f"{model.name}'s text tower is another")
    ids = model.tokenizer(list(texts)).to(model.device)  # (N, L)
    with torch.no_grad():
        x = module.token_embedding(ids) + module.positional_embedding  # (N, L, W)
    return _decompose(module.transformer.resblocks, x, ids.argmax(-1), module.attn_mask, module.ln_final,
                      module.text_projection, False, _labels)


def token_parts(model, pixels: torch.Tensor, first_layer: int = -1) -> torch.Tensor:
    """What each image token writes into the embedding through the heads of layers first_layer.. (negative:
    from the end), summed over those layers and heads -> (N, T, D); a spatial map is its dot product with a
    text embedding over the patch tokens."""
    visual = _check_vit(model)
    blocks = visual.transformer.resblocks
    first = first_layer % len(blocks)
    with torch.no_grad():
        x = visual._embeds(pixels)
        rows = torch.zeros(len(x), dtype=torch.long)
        d = _decompose(blocks, x, rows, None, visual.ln_post, visual.proj, True, _labels)
    return torch.from_numpy(d.tokens[:, first:].sum((1, 2))).to(pixels.device)  # (N, T, D)


def mean_ablate(parts: np.ndarray, ablated, reference: np.ndarray | None = None) -> np.ndarray:
    """Embeddings (N, D) with the parts at indices `ablated` replaced by their mean over `reference`
    (default: the same parts), renormalized. No index: the embeddings themselves."""
    ablated = np.asarray(list(ablated), dtype=int)
    reference = parts if reference is None else reference
    kept = parts.copy()
    kept[:, ablated] = reference[:, ablated].mean(0)
    total = kept.sum(1)  # (N, D)
    return total / np.linalg.norm(total, axis=1, keepdims=True)


def _accuracy(emb: np.ndarray, weights: np.ndarray, labels: np.ndarray) -> float:
    return float(((emb @ weights.T).argmax(1) == labels).mean())


def ablation_curve(d: Decomposition, weights: np.ndarray, labels) -> "pd.DataFrame":
    """Zero-shot accuracy when every part of layers 0 .. k-1 (and the embedding stream) is mean-ablated, for
    k = 0 (nothing) .. layers: the paper's curve (most of the direct effect sits in the last layers)."""
    import pandas as pd
    labels = np.asarray(labels)
    rows = []
    for k in range(d.layers + 1):
        ablated = [i for i, name in enumerate(d.labels) if k and (name == "embed" or int(name[1:].split(".")[0]) < k)]
        rows.append({"layers_ablated": k, "parts_ablated": len(ablated),
                     "accuracy": _accuracy(mean_ablate(d.parts, ablated), weights, labels)})
    return pd.DataFrame(rows)


def head_ablations(d: Decomposition, weights: np.ndarray, labels) -> "pd.DataFrame":
    """Zero-shot accuracy with each part alone mean-ablated, and the drop from none -> part, accuracy, drop."""
    import pandas as pd
    labels = np.asarray(labels)
    base = _accuracy(mean_ablate(d.parts, []), weights, labels)
    rows = [{"part": name, "accuracy": _accuracy(mean_ablate(d.parts, [i]), weights, labels)}
            for i, name in enumerate(d.labels)]
    frame = pd.DataFrame(rows)
    return frame.assign(drop=base - frame["accuracy"])


def neuron_effects(model, images, layers=None) -> tuple[np.ndarray, list[int]]:
    """The direct effect of every MLP neuron on each image's embedding: its activation times its output
    weights, through the final LayerNorm (mean and scale frozen per image) and the projection, over the
    final embedding's norm -> ((N, len(layers), neurons, D), the layers). layers: default every layer."""
    visual = _check_vit(model)
    blocks = visual.transformer.resblocks
    layers = list(range(len(blocks))) if layers is None else [int(l) for l in layers]
    pixels = _pixels(model, list(images))
    acts = {}
    hooks = [blocks[l].mlp.c_proj.register_forward_pre_hook(lambda m, i, l=l: acts.__setitem__(l, i[0][:, 0]))
             for l in layers]
    fit_torch()
    try:
        with torch.no_grad():
            x = visual._embeds(pixels)
            for block in blocks:
                x = block(x)
            pooled = x[:, 0]
    finally:
        for h in hooks:
            h.remove()
    ln, proj = visual.ln_post, visual.proj
    out = []
    with torch.no_grad():
        scale = torch.sqrt(pooled.var(-1, unbiased=False) + ln.eps)[:, None, None]  # (N, 1, 1)
        norm = (ln(pooled) @ proj).norm(dim=-1)[:, None, None]
        for l in layers:
            w_out = _layer_scale_weight(blocks[l].ls_2) * blocks[l].mlp.c_proj.weight.T  # (neurons, W)
            writes = acts[l][:, :, None] * w_out  # (N, neurons, W)
            centered = (writes - writes.mean(-1, keepdim=True)) / scale * ln.weight
            out.append(((centered @ proj) / norm).float().numpy())
    return np.stack(out, 1), layers


def class_neurons(model, dataset, weights: np.ndarray, k: int = 3, cache=True) -> "pd.DataFrame":
    """For each class of a lab dataset, the k MLP neurons whose direct effect (`neuron_effects`) on the
    class's classifier direction weights[c] is largest on average over that class's images -> class, layer,
    neuron, direct_effect. Memoized in the model's cache folder."""
    import pandas as pd

    from ..core import memo
    from ..data import dataset_identity
    labels = dataset.labels["label"].to_numpy()

    def compute() -> list:
        effects, layers = neuron_effects(model, [dataset.source(i) for i in range(len(dataset))])
        rows = []
        for c, name in enumerate(dataset.classes):
            if not (labels == c).any():
                continue
            score = (effects[labels == c] @ weights[c]).mean(0)  # (layers, neurons)
            for flat in np.argsort(-score, axis=None)[:k]:
                layer, neuron = np.unravel_index(flat, score.shape)
                rows.append({"class": name, "layer": layers[layer], "neuron": int(neuron),
                             "direct_effect": float(score[layer, neuron])})
        return rows
    where = model.cache.directory if cache is True else cache
    return pd.DataFrame(memo.memoized("class_neurons", [model.fingerprint, dataset_identity(dataset),
                                                        np.asarray(weights), k], compute, where,
                                      code=(__name__,), packages=("torch",)))


def _layer_scale_weight(module) -> torch.Tensor | float:
    return module.gamma if hasattr(module, "gamma") else 1.0
