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
    concept_neurons(model, dataset, ["red", "circle"])   # ... and each concept's text direction
    neuron_effects(model, images, order=2)   # second-order: each neuron's writes carried by the later heads

How the sum is exact. The residual stream at the pooled token is the embedding stream plus, for every
block, its attention output (a sum over heads: each head's attention-weighted values through its
slice of the output projection, plus a share of the output bias) and its MLP output. The final
LayerNorm's mean and scale are frozen per image (centering is linear, and dividing by a fixed
scale is too), its bias and the projection are shared out equally over the parts, and every part is
divided by the final embedding's norm: the parts then sum to the L2-normalized embedding. Per token,
a head's part is its attention weight on that token times the token's value through the head's
projection, plus an equal share of the head's bias: per-token parts sum to their head's part.

For class-token ViTs: open_clip's VisionTransformer (OpenAI's, LAION's, a transformers CLIP the lab
remaps into it; its text transformer for texts) and timm's ViT and EVA blocks (EVA02; lab.studies._streams
reads each tower; neurons through timm's Mlp or SwiGLU, its inner LayerNorm frozen too). Other towers
raise BadInput saying why.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core.families import family_of
from ..core.images import load_rgb_image
from ..errors import BadInput
from ..threads import fit_torch
from . import _neurons, _streams
from ._neurons import blocks_of, read_neurons, second_order
from ._streams import final_of, open_clip_stream, text_tower, timm_decomposable, timm_stream

__all__ = ["Decomposition", "decomposable", "decompose", "decompose_dataset", "decompose_texts", "token_parts",
           "mean_ablate", "ablation_curve", "head_ablations", "neuron_effects", "class_neurons", "concept_neurons"]


@dataclass
class Decomposition:
    """parts (N, K, D) float32 summing over K to the L2-normalized embeddings; labels (K,): "embed",
    "L{l}.H{h}" (layer l's head h) and "L{l}.mlp" in the order of the stream; tokens (N, L, H, T, D)
    when asked for: layer l's head h's part through token t (T: every token of the sequence, the `prefix`
    tokens first: the class token and any registers)."""
    parts: np.ndarray
    labels: list[str]
    layers: int
    heads: int
    tokens: np.ndarray | None = None
    prefix: int = 1

    def index(self, label: str) -> int:
        return self.labels.index(label)

    def head(self, layer: int, head: int) -> np.ndarray:
        """(N, D) layer `layer`'s head `head`."""
        return self.parts[:, self.index(f"L{layer}.H{head}")]

    def head_map(self, layer: int, head: int, direction: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
        """What each patch token writes through layer `layer`'s head `head` along `direction` (D,) (e.g. a
        text embedding) -> (N, rows, cols), the patches in row order after the prefix tokens. Needs the
        per-token parts (decompose(..., tokens=True))."""
        if self.tokens is None:
            raise BadInput("a head's map reads each token's part: decompose the images with tokens=True")
        rows, cols = grid
        along = self.tokens[:, layer, head] @ np.asarray(direction, np.float32)  # (N, T)
        return along[:, self.prefix:self.prefix + rows * cols].reshape(len(along), rows, cols)


def _labels(layers: int, heads: int) -> list[str]:
    return ["embed"] + [f"L{l}.{p}" for l in range(layers) for p in [f"H{h}" for h in range(heads)] + ["mlp"]]


def _not_decomposable(visual) -> str | None:
    """Why the image tower's embedding is not a sum of parts at its class token; None: it is."""
    if hasattr(visual, "trunk"):
        return timm_decomposable(visual)
    if type(visual).__module__.startswith("transformers."):
        return ("it runs as transformers' own tower (SigLIP's attention-pool head, or a CLIP the lab could not "
                "remap into open_clip); only remapped CLIP checkpoints decompose")
    if not (hasattr(visual, "transformer") and hasattr(visual, "class_embedding")):
        return "it is not a ViT with a class token"
    if getattr(visual, "attn_pool", None) is not None:
        return "its embedding is an attention pool's output"
    if getattr(visual, "pool_type", "tok") != "tok" or getattr(visual, "final_ln_after_pool", False):
        return "its embedding is not the class token through the final LayerNorm"
    return None


def decomposable(model) -> bool:
    """Whether the image tower is a class-token ViT whose embedding is its class token through the final
    LayerNorm and an affine map: open_clip's VisionTransformer with 'tok' pooling, timm's ViT or EVA with
    'token' pooling and a linear head."""
    return _not_decomposable(model.module.visual) is None


def _prefix(model) -> int:
    """Tokens before the patches (the class token, any registers), checking the tower decomposes."""
    visual = _check_vit(model)
    return family_of(visual).prefix_tokens(visual)


def _pixels(model, images) -> torch.Tensor:
    """Images -> the model's normalized input pixels (N, 3, H, W) on its device."""
    return torch.stack([model.preprocess(load_rgb_image(im)) for im in images]).to(model.device)


def _check_vit(model):
    visual = model.module.visual
    why = _not_decomposable(visual)
    if why:
        raise BadInput(f"decompose reads a class-token ViT whose embedding is its class token through the final "
                       f"LayerNorm and a linear projection (open_clip's VisionTransformer, timm's ViT or EVA); "
                       f"{model.name}'s image tower is {type(visual).__name__}, whose embedding is not such a sum: "
                       f"{why}")
    return visual


def _through_final(ln, proj, bias, pooled, stack: torch.Tensor, count: int | None) -> torch.Tensor:
    """Residual-space parts (N, ..., W) of the pooled vector (N, W) through the final LayerNorm `ln` with its
    mean and scale frozen per image, and the affine map after it (x @ proj + bias), over the final
    embedding's norm -> (N, ..., D). The biases are shared equally over `count` parts; None: no share."""
    scale = torch.sqrt(pooled.var(-1, unbiased=False) + ln.eps)  # (N,)
    shape = (-1,) + (1,) * (stack.dim() - 1)
    centered = (stack - stack.mean(-1, keepdim=True)) / scale.view(shape) * ln.weight
    parts = centered @ proj  # (..., D)
    if count is not None:
        parts = parts + ((ln.bias @ proj if ln.bias is not None else 0.0) + bias) / count
    norm = (ln(pooled) @ proj + bias).norm(dim=-1)  # (N,)
    return parts / norm.view(shape)


def _decompose(read, prefix: int) -> Decomposition:
    """`read()` -> a Stream (lab.studies._streams), run without gradients, as a Decomposition."""
    fit_torch()
    with torch.no_grad():
        s = read()
        layers, nheads = s.heads.shape[1:3]
        stacked = torch.cat([s.heads, s.mlps[:, :, None]], 2).flatten(1, 2)  # (N, layers * (H + 1), W)
        residual = torch.cat([s.embed[:, None], stacked], 1)  # (N, K, W)
        count = residual.shape[1]
        parts = _through_final(s.ln, s.proj, s.bias, s.pooled, residual, count)
        token_parts = None
        if s.tokens is not None:  # a head's share of the LayerNorm bias, spread evenly over its tokens
            token_parts = _through_final(s.ln, s.proj, s.bias, s.pooled, s.tokens, count * s.tokens.shape[3])
            token_parts = token_parts.float().cpu().numpy()
    return Decomposition(parts.float().cpu().numpy(), _labels(layers, nheads), layers, nheads, token_parts, prefix)


def _image_stream(model, pixels: torch.Tensor, tokens_from: int | None):
    """A reader of the image tower's Stream on pixels (N, 3, H, W), with per-token parts from layer
    tokens_from on (None: none)."""
    visual = _check_vit(model)
    if hasattr(visual, "trunk"):
        return lambda: timm_stream(visual, pixels, tokens_from)

    def read():
        x = visual._embeds(pixels)  # (N, L, W): patches, class token, positions, ln_pre
        rows = torch.zeros(len(x), dtype=torch.long, device=x.device)  # the class token
        return open_clip_stream(visual.transformer.resblocks, x, rows, None, tokens_from, visual.ln_post,
                                visual.proj)
    return read


def decompose(model, images, tokens: bool = False, batch_size: int = 32) -> Decomposition:
    """The image embeddings of `images` (paths, PIL images, arrays) as sums of parts (module docstring).
    tokens=True adds each head's part per image token (N, L, H, T, D), computed batch by batch."""
    prefix = _prefix(model)
    images = list(images)
    if not images:
        raise BadInput("decompose needs at least one image")
    out = [_decompose(_image_stream(model, _pixels(model, images[s:s + batch_size]), 0 if tokens else None), prefix)
           for s in range(0, len(images), batch_size)]
    first = out[0]
    return Decomposition(np.concatenate([d.parts for d in out]), first.labels, first.layers, first.heads,
                         np.concatenate([d.tokens for d in out]) if tokens else None, prefix)


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
                          folder_name="results", code=(__name__, _streams.__name__), packages=("torch", "timm"),
                          kind="npz")
    layers, heads = (int(v) for v in found["shape"])
    return Decomposition(found["parts"], _labels(layers, heads), layers, heads,
                         prefix=_prefix(model))


def decompose_texts(model, texts: list[str]) -> Decomposition:
    """The text embeddings as sums of parts at the end-of-text token (the largest id), for open_clip's
    causal text transformer (CLIP's, or a CustomTextCLIP's `text`: EVA02, ConvNeXt, MobileCLIP, ViTamin)."""
    text = text_tower(model.module)
    if text is None or getattr(text, "cls_emb", None) is not None or getattr(text, "use_pad_mask", False):
        tower = getattr(model.module, "text", model.module)
        raise BadInput(f"decompose_texts reads open_clip's causal text transformer pooled at its end-of-text token; "
                       f"{model.name}'s text tower is {type(tower).__name__}")
    ids = model.tokenizer(list(texts)).to(model.device)  # (N, L)

    def read():
        x = text.token_embedding(ids) + text.positional_embedding  # (N, L, W)
        return open_clip_stream(text.transformer.resblocks, x, ids.argmax(-1), text.attn_mask, None,
                                text.ln_final, text.text_projection)
    return _decompose(read, 0)


def token_parts(model, pixels: torch.Tensor, first_layer: int = -1) -> torch.Tensor:
    """What each image token writes into the embedding through the heads of layers first_layer.. (negative:
    from the end), summed over those layers and heads -> (N, T, D); a spatial map is its dot product with a
    text embedding over the patch tokens."""
    visual = _check_vit(model)
    depth = len(blocks_of(visual))
    if not -depth <= first_layer < depth:
        raise BadInput(f"first_layer={first_layer}: {model.name} has layers 0 .. {depth - 1} (or -1 .. -{depth} "
                       "counted from the end)")
    fit_torch()
    with torch.no_grad():
        s = _image_stream(model, pixels, first_layer % depth)()
        count = 1 + s.heads.shape[1] * (s.heads.shape[2] + 1)  # the parts a decomposition has
        tokens = _through_final(s.ln, s.proj, s.bias, s.pooled, s.tokens, count * s.tokens.shape[3])
    return tokens.sum((1, 2))  # (N, T, D), on the model's device


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


def neuron_effects(model, images, layers=None, order: int = 1, along=None) -> tuple[np.ndarray, list[int]]:
    """The effect of every MLP neuron on each image's embedding, through the final LayerNorm (mean and
    scale frozen per image) and the projection, over the final embedding's norm -> ((N, len(layers),
    neurons, D), the layers).
    order=1: the direct effect, what the neuron writes at the class token (its activation times its output
    weights); the effects of a layer plus its output bias's part sum to the layer's MLP part.
    order=2: the second-order effect (Gandelsman et al. 2025), what it writes at every token carried by the
    later layers' heads to the class token (`_neurons.second_order`).
    layers: default every layer (order 2: every layer but the last, which no head reads after).
    along: directions (G, D) to project the effects on before they leave the device -> (N, len(layers),
    neurons, G)."""
    if order not in (1, 2):
        raise BadInput(f"order={order!r}: 1 (direct effect) or 2 (through the later heads)")
    visual = _check_vit(model)
    depth = len(blocks_of(visual))
    layers = list(range(depth - order + 1)) if layers is None else [int(l) for l in layers]
    pixels = _pixels(model, list(images))
    fit_torch()
    with torch.no_grad():
        neurons = read_neurons(visual, pixels, layers, carried=order == 2)
        ln, proj, bias = final_of(visual, neurons.pooled)
        effects = [_through_final(ln, proj, bias, neurons.pooled,
                                  neurons.writes(l) if order == 1 else second_order(visual, neurons, l), None)
                   for l in layers]  # (N, neurons, D) each
        if along is not None:
            directions = torch.as_tensor(np.asarray(along), dtype=effects[0].dtype, device=effects[0].device)
            effects = [e @ directions.T for e in effects]  # (N, neurons, G) each
    return torch.stack(effects, 1).float().cpu().numpy(), layers


def _top_neurons(model, dataset, kind: str, key: list, groups, k: int, cache, batch_size: int,
                 order: int) -> "pd.DataFrame":
    """The k neurons with the largest mean effect (`neuron_effects` of that order over the dataset's images)
    along each group's direction, over the group's images: groups(labels) -> [(name, direction (D,), images
    (N,) bool)]. -> `kind`, layer, neuron, direct_effect (order 1) or second_order_effect; memoized in the
    model's cache folder under `key`."""
    import pandas as pd

    from ..core import memo
    from ..data import dataset_identity

    column = "direct_effect" if order == 1 else "second_order_effect"

    def compute() -> list:
        chosen_groups = groups(dataset.labels["label"].to_numpy())
        directions = np.stack([direction for _, direction, _ in chosen_groups])  # (G, D)
        sums = [0.0] * len(chosen_groups)
        for start in range(0, len(dataset), batch_size):  # a batch at a time, projected on the device
            stop = min(start + batch_size, len(dataset))
            effects, layers = neuron_effects(model, [dataset.source(i) for i in range(start, stop)], order=order,
                                             along=directions)  # (n, layers, neurons, G)
            for g, (_, _, chosen) in enumerate(chosen_groups):
                sums[g] = sums[g] + effects[chosen[start:stop], ..., g].sum(0)  # (layers, neurons)
        rows = []
        for (name, _, chosen), total in zip(chosen_groups, sums):
            if not chosen.any():
                continue
            score = total / chosen.sum()  # (layers, neurons)
            for flat in np.argsort(-score, axis=None)[:k]:
                layer, neuron = np.unravel_index(flat, score.shape)
                rows.append({kind: name, "layer": layers[layer], "neuron": int(neuron),
                             column: float(score[layer, neuron])})
        return rows
    where = model.cache.directory if cache is True else cache
    return pd.DataFrame(memo.memoized(f"{kind}_neurons", [model.fingerprint, dataset_identity(dataset), *key, k, order],
                                      compute, where, code=(__name__, _streams.__name__, _neurons.__name__),
                                      packages=("torch", "timm")))


def class_neurons(model, dataset, weights: np.ndarray, k: int = 3, cache=True, batch_size: int = 32,
                  order: int = 1) -> "pd.DataFrame":
    """For each class of a lab dataset, the k MLP neurons whose direct effect (`neuron_effects`; order=2:
    second-order effect) on the class's classifier direction weights[c] is largest on average over that
    class's images -> class, layer, neuron, direct_effect (or second_order_effect). Memoized in the model's
    cache folder."""
    weights = np.asarray(weights)
    return _top_neurons(model, dataset, "class", [weights], lambda labels: [
        (name, weights[c], labels == c) for c, name in enumerate(dataset.classes)], k, cache, batch_size, order)


def concept_neurons(model, dataset, concepts: list[str], k: int = 3, cache=True, batch_size: int = 32,
                    order: int = 1) -> "pd.DataFrame":
    """For each concept (a text: "red", "circle", "a striped texture"), the k MLP neurons whose direct effect
    (order=2: second-order effect) along the concept's direction is largest on average over the dataset's
    images -> concept, layer, neuron, direct_effect (or second_order_effect). A concept's direction is its
    text embedding less the mean of the concepts' (with more than one), so a neuron that writes what every
    text shares does not top every list. Memoized in the model's cache folder."""
    concepts = list(concepts)
    directions = model.encode_texts(concepts, progress=False)  # (C, D)
    if len(concepts) > 1:
        directions = directions - directions.mean(0)
    return _top_neurons(model, dataset, "concept", [concepts], lambda labels: [
        (name, directions[c], np.ones(len(labels), bool)) for c, name in enumerate(concepts)], k, cache, batch_size,
        order)
