"""Attribution maps: where a CLIP looks when it matches an image to a text, for every architecture.

    result = attribute(model, images, ["a red circle", "a blue square"], method="auto")
    result.maps      # (N, P, H, W) in [0, 1], aligned with result.views (the model's input view)
    result.scores    # (N, P) logit_scale * cosine (or softmax over the texts with target="softmax")
    text_relevance(model, image, "a red circle")   # (tokens, relevance) at the end-of-text token

Methods (`list_methods(model)`, the tower family's own first):
    relevance            ViTs: gradient-weighted attention relevance (Chefer et al. 2021):
                         R <- R + mean_heads(clamp(dA * A, min=0)) @ R from `start_layer` (default
                         the last block), read out as the embedding pools the tokens: the class token's
                         row, the patch rows' mean (avg pooling), or an attention-pooling head's probe
    rollout              ViTs: attention rollout (Abnar & Zuidema 2020), the same for every text
    decomposition        class-token ViTs: each patch's direct contribution to the embedding through the
                         heads of the layers from `start_layer` (lab.studies.decomposition), on each text
    gradcam, gradcam++   CNNs and hybrids: Grad-CAM (captum LayerGradCam) / Grad-CAM++ on the family's
                         last feature stage (or `layer=` any module name), bilinear upsampling
    integrated_gradients, smoothgrad, occlusion   any model, on the input pixels (captum)
    random               a seeded random map: the baseline every method must beat
What a tower offers comes from its family adapter (lab.core.families: open_clip's ViT and ModifiedResNet,
timm's ViTs (EVA02, SigLIP, ViTamin) and CNNs (ConvNeXt, FastViT), transformers' ViTs): which modules hold
the attention probabilities (kept with their gradients while a map is computed, and restored after),
the patch grid, the prefix tokens, the pooling, the Grad-CAM layer. No tower's code is forked.
Images are batched: one forward pass per batch, one backward pass per text. Results are kept in the
model's cache folder (lab.core.memo), keyed by its fingerprint, the images' content and every parameter.

A method is one function (model, pixels, score fn, targets, layer=, start_layer=, seed=, **kwargs)
-> (maps (N, T, h, w), scores (N, P)) and one entry in METHODS (which models it applies to). The
module is over 400 lines because the methods share its inputs, targets and attention hooks.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..core import memo
from ..core.families import family_of
from ..core.families._base import explicit_attention_of
from ..core.images import file_key, load_rgb_image
from ..errors import BadInput
from ..threads import fit_torch
from . import decomposition
from ._streams import text_tower

__all__ = ["METHODS", "Method", "PIXEL_METHODS", "family", "is_vit", "has_gradcam", "list_methods", "Attribution", "image_keys", "memoized",
           "model_inputs", "score_fn", "keep_attention", "relevance_from_attention", "rollout_from_attention",
           "attribute", "text_relevance_applies", "text_relevance"]

def family(model):
    """The image tower's family (lab.core.families): what relevance, rollout and Grad-CAM read."""
    return family_of(model.module.visual)


def is_vit(model) -> bool:
    """Attention blocks the relevance and rollout methods read."""
    return family(model).kind == "vit"


def has_gradcam(model) -> bool:
    """A convolutional stage Grad-CAM reads by default (a CNN, or a hybrid's stem)."""
    return family(model).gradcam_layer(model.module.visual) is not None


def list_methods(model) -> list[str]:
    """The methods that apply to this model's image tower, its own first ('auto' takes the first)."""
    return [name for name, method in METHODS.items() if method.applies(model)]


@dataclass
class Attribution:
    maps: np.ndarray  # (N, P, H, W) float32 in [0, 1]
    scores: np.ndarray  # (N, P) the explained scores
    views: np.ndarray  # (N, H, W, 3) uint8: the images as the model sees them (resized, cropped)
    method: str
    texts: list[str]


# -- inputs and targets --------------------------------------------------------------------------

def image_keys(model, images) -> list:
    """Content identities of images for result keys: files by the hash of their bytes (remembered
    by their stat in the model's cache), in-memory images by their pixels."""
    return [file_key(model.cache.file_digest(os.fspath(im))) if isinstance(im, (str, os.PathLike)) else im
            for im in images]


# what a map depends on, for the memo's key
CODE = (__name__, "lab.studies.decomposition", "lab.studies._streams", "lab.core.families._base",
        "lab.core.families.open_clip_vit", "lab.core.families.timm_vit", "lab.core.families.transformers_vit")


def memoized(model, name: str, parts, compute, cache, code=CODE):
    """lab.core.memo.memoized for results of one model: keyed by its fingerprint too, kept beside its
    embeddings (<model's cache folder>/attribution) unless `cache` names another folder or is False."""
    where = model.cache.directory if cache is True else cache
    return memo.memoized(name, [model.fingerprint, parts], compute, where, folder_name="attribution", code=code,
                         packages=("torch", "captum"), kind="npz")


def model_inputs(model, images) -> tuple[torch.Tensor, np.ndarray]:
    """Images (paths, PIL, arrays) -> normalized pixels (N, 3, H, W) on the model's device and
    the uint8 input views (N, H, W, 3) the maps align with."""
    views = torch.stack([model.preprocess_image(load_rgb_image(im)) for im in images])  # (N, 3, H, W) uint8
    mean = torch.tensor(model.preprocess_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.preprocess_cfg["std"]).view(1, 3, 1, 1)
    pixels = (views.float() / 255 - mean) / std
    return pixels.to(model.device), views.permute(0, 2, 3, 1).numpy()


def score_fn(model, text_emb: torch.Tensor, target: str = "similarity"):
    """f(pixels) -> (N, P): logit_scale * cosine to each text, or its softmax over the texts.
    The softmax is the target for every model, a sigmoid one (SigLIP) included: a map then explains
    the choice among the texts, which a per-text sigmoid cannot express (the bias cancels in it).
    Pixels and text embeddings on any device are moved to the model's."""
    if target not in ("similarity", "softmax"):
        raise BadInput(f"target must be 'similarity' or 'softmax'; got {target!r}")
    scale = model.logit_scale
    text_emb = text_emb.to(model.device)  # (P, D)

    def f(pixels):
        fit_torch()  # every forward of every method passes here
        img = F.normalize(model.module.encode_image(pixels.to(model.device)).float(), dim=-1)  # (N, D)
        logits = scale * img @ text_emb.T  # (N, P)
        return logits.softmax(-1) if target == "softmax" else logits
    f.text_emb = text_emb  # what a method that reads the embedding directly (decomposition) projects on
    return f


def _pick(scores: torch.Tensor, target) -> torch.Tensor:
    """Scores (N, P) -> (N,) of text `target` (an int), or of each image's own text (a (N,) tensor)."""
    return scores[:, target] if isinstance(target, int) else scores.gather(1, target[:, None])[:, 0]


def _normalize_maps(m: torch.Tensor) -> np.ndarray:
    """Per-map min-max to [0, 1] over the last two axes."""
    m = m.detach().float()
    lo = m.flatten(-2).min(-1).values[..., None, None]
    hi = m.flatten(-2).max(-1).values[..., None, None]
    return ((m - lo) / (hi - lo).clamp(min=1e-12)).cpu().numpy().astype(np.float32)


def _upsample(m: torch.Tensor, size) -> torch.Tensor:
    """(N, h, w) -> (N, H, W) bilinear."""
    return F.interpolate(m[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


# -- ViTs: attention relevance and rollout, through the tower's family --------------------------

@contextlib.contextmanager
def keep_attention(transformer, first: int = 0):
    """Within the block, the attention modules of an open_clip `transformer` (an image or text tower's
    blocks) from block `first` on compute their probabilities explicitly; yields the list they are
    appended to (one (N, h, L, L) tensor per block, in order). Earlier blocks keep their fused attention."""
    with explicit_attention_of([b.attn for b in transformer.resblocks][first:], []) as store:
        yield store


def _start(start_layer: int, blocks: int) -> int:
    if not -blocks <= start_layer < blocks:
        raise BadInput(f"start_layer={start_layer} but the model has {blocks} blocks: "
                       f"use 0..{blocks - 1}, or -1 for the last block")
    return start_layer % blocks


def relevance_from_attention(attentions, grads, start_layer: int = -1) -> torch.Tensor:
    """Chefer et al.'s rule: R = I; for each block from start_layer: R += mean_h(clamp(grad * A, 0)) @ R.
    attentions, grads: lists of (N, h, L, L). Returns R (N, L, L)."""
    n, _, length, _ = attentions[0].shape
    R = torch.eye(length, device=attentions[0].device).expand(n, length, length).clone()
    start = _start(start_layer, len(attentions))
    for A, g in zip(attentions[start:], grads[start:]):
        cam = (g * A).clamp(min=0).mean(1)  # (N, L, L)
        R = R + cam @ R
    return R


def rollout_from_attention(attentions) -> torch.Tensor:
    """Abnar & Zuidema: A = 0.5 mean_h(A) + 0.5 I, rows renormalized, multiplied through the layers."""
    n, _, length, _ = attentions[0].shape
    eye = torch.eye(length, device=attentions[0].device)
    R = eye.expand(n, length, length).clone()
    for A in attentions:
        a = 0.5 * A.mean(1) + 0.5 * eye
        R = (a / a.sum(-1, keepdim=True)) @ R
    return R


def _readout(R: torch.Tensor, pooling: str, start: int, probe: torch.Tensor | None) -> torch.Tensor:
    """The relevance of every token to the image embedding, (N, L), from R (N, L, L): the class token's
    row ("token"), the mean of the rows the pooling averages ("avg": from token `start` on), or the pool's
    first probe weighting the rows it attends to ("map": probe (N, L - start), its weights over them)."""
    if pooling == "token":
        return R[:, 0]
    if pooling == "avg":
        return R[:, start:].mean(1)
    return (probe[:, None] @ R[:, start:])[:, 0]


def _vit_maps(model, pixels, f, targets, method, start_layer):
    """Relevance or rollout over the tower's blocks, read out as its embedding is pooled. A tower without
    a class token (SigLIP's attention-pooling head) is read through the head's own attention of its probe
    over the tokens: relevance weights it by its gradient (clamped, head-averaged, as in every block);
    rollout takes its head-averaged attention."""
    visual = model.module.visual
    family = family_of(visual)
    start = _start(start_layer, len(family.attention_modules(visual))) if method == "relevance" else 0
    pooling, prefix, (rows, cols) = family.pooling(visual), family.prefix_tokens(visual), family.grid(visual)
    probe = family.keep_probe_attention(visual) if pooling == "map" else contextlib.nullcontext([])
    with family.keep_attention(visual, first=start) as attentions, probe as probes, \
            torch.set_grad_enabled(method == "relevance"):
        scores = f(pixels)  # (N, P); relevance: a graph from the start block's attention on
    maps = []
    for k, t in enumerate(targets):
        if method == "rollout":
            R = rollout_from_attention(attentions)
            weights = probes[0][:, :, 0].mean(1) if probes else None  # (N, L)
        else:
            grads = torch.autograd.grad(_pick(scores, t).sum(), attentions + probes[:1],
                                        retain_graph=k < len(targets) - 1)
            R = relevance_from_attention(attentions, grads[:len(attentions)], 0)  # attentions start at the start block
            weights = (grads[-1] * probes[0]).clamp(min=0).mean(1)[:, 0] if probes else None  # (N, L)
        tokens = _readout(R, pooling, family.pooled_from(visual), weights)[:, prefix:prefix + rows * cols]  # (N, patches)
        maps.append(_upsample(tokens.reshape(-1, rows, cols), pixels.shape[-2:]))
    return torch.stack(maps, 1), scores.detach()


# -- class-token ViTs: the embedding's exact decomposition ------------------------------------------

def _decomposition_maps(model, pixels, f, targets, start_layer):
    """Each patch token's direct contribution to the image embedding through the heads of the last layers
    (from `start_layer`), projected on each text's embedding (Gandelsman et al. 2024): a map per text."""
    parts = decomposition.token_parts(model, pixels, start_layer)  # (N, T, D)
    visual = model.module.visual
    family = family_of(visual)
    (rows, cols), prefix = family.grid(visual), family.prefix_tokens(visual)
    per_text = parts[:, prefix:prefix + rows * cols] @ f.text_emb.T.to(parts.dtype)  # (N, patches, P)
    with torch.no_grad():
        scores = f(pixels)
    maps = []
    for t in targets:
        chosen = per_text[:, :, t] if isinstance(t, int) else per_text.gather(2, t.view(-1, 1, 1).expand(
            -1, per_text.shape[1], 1))[:, :, 0]  # (N, patches)
        maps.append(_upsample(chosen.reshape(-1, rows, cols).float(), pixels.shape[-2:]))
    return torch.stack(maps, 1), scores


# -- CNNs and hybrids: Grad-CAM ------------------------------------------------------------------

def _resolve_layer(model, layer):
    """A module of the image tower: itself, its name (any, e.g. 'trunk.stages.2'), or None for the
    family's own layer (ModifiedResNet: layer4; ConvNeXt: its last stage; a hybrid: its stem's last stage)."""
    if layer is not None and not isinstance(layer, str):
        return layer
    visual = model.module.visual
    name = layer or family_of(visual).gradcam_layer(visual)
    if name is None:
        raise BadInput(f"{model.name}'s image tower has no layer Grad-CAM reads by default: pass layer= a module name")
    try:
        return visual.get_submodule(name)
    except AttributeError:
        raise BadInput(f"layer {name!r} not found in the image tower; its children are "
                       f"{[n for n, _ in visual.named_children()]}") from None


@contextlib.contextmanager
def _graph_starts_at(layer):
    """Within the block, autograd's graph starts at `layer`'s output (nothing before the layer
    records one). The output is handed on as a copy of a fresh leaf, so in-place operations after
    the layer (ReLU(inplace=True) after a batch norm) work as they do on a full graph."""
    def hook(module, inputs, out):
        return out if out.requires_grad or not torch.is_grad_enabled() else out.detach().requires_grad_().clone()
    handle = layer.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _gradcam_maps(model, pixels, f, targets, layer, plus: bool):
    from captum.attr import LayerAttribution, LayerGradCam
    layer = _resolve_layer(model, layer)
    maps = []
    if not plus:
        cam = LayerGradCam(f, layer)
        with _graph_starts_at(layer):  # registered before captum's own hook, which then sees the copy
            for t in targets:
                a = cam.attribute(pixels, target=t, relu_attributions=True)  # (N, 1, h, w)
                maps.append(LayerAttribution.interpolate(a, pixels.shape[-2:], interpolate_mode="bilinear")[:, 0])
        with torch.no_grad():
            scores = f(pixels)
        return torch.stack(maps, 1), scores
    acts = {}
    with _graph_starts_at(layer):
        handle = layer.register_forward_hook(lambda m, i, o: acts.__setitem__("a", o))
        try:
            scores = f(pixels)
        finally:
            handle.remove()
    A = acts["a"]  # (N, C, h, w)
    for k, t in enumerate(targets):
        g = torch.autograd.grad(_pick(scores, t).sum(), A, retain_graph=k < len(targets) - 1)[0]
        g2, g3 = g ** 2, g ** 3
        alpha = g2 / (2 * g2 + (A * g3).sum((2, 3), keepdim=True)).where(g != 0, torch.ones_like(g))
        weights = (alpha * F.relu(g)).sum((2, 3), keepdim=True)  # (N, C, 1, 1)
        maps.append(_upsample(F.relu((weights * A).sum(1)), pixels.shape[-2:]))
    return torch.stack(maps, 1), scores.detach()


# -- any model: captum on the pixels ------------------------------------------------------------

def _pixel_scores(pixels, f):
    with torch.no_grad():
        return f(pixels)  # (N, P)


def _random(model, pixels, f, targets, *, seed, **kw):
    scores = _pixel_scores(pixels, f)
    g = torch.Generator().manual_seed(seed)
    return torch.rand(len(pixels), len(targets), *pixels.shape[-2:], generator=g), scores


def _occlusion(model, pixels, f, targets, **kw):
    """Forward-only: each occluded batch is scored against several texts at once."""
    from captum.attr import Occlusion
    scores = _pixel_scores(pixels, f)
    w = kw.get("window", max(4, pixels.shape[-1] // 8))
    occlude = dict(sliding_window_shapes=(3, w, w), strides=(3, max(1, w // 2), max(1, w // 2)),
                   baselines=0.0, perturbations_per_eval=kw.get("perturbations_per_eval", 8))
    if len(targets) == 1 and not isinstance(targets[0], int):  # each image's own text
        return Occlusion(f).attribute(pixels, target=targets[0], **occlude).sum(1, keepdim=True).clamp(min=0), \
            scores
    maps, step = [], max(1, kw.get("maps_per_pass", 256) // len(pixels))  # captum keeps (N * texts, 3, H, W)
    for c in range(0, len(targets), step):
        chunk = targets[c:c + step]
        a = Occlusion(lambda x, chunk=chunk: f(x)[:, chunk]).attribute(pixels, **occlude)  # one map per output
        maps.append(a.reshape(len(pixels), len(chunk), *a.shape[1:]).sum(2))  # (N, texts, H, W), image-major
    return torch.cat(maps, 1).clamp(min=0), scores


def _integrated_gradients(model, pixels, f, targets, **kw):
    from captum.attr import IntegratedGradients
    scores = _pixel_scores(pixels, f)
    maps = [IntegratedGradients(f).attribute(pixels, target=p, n_steps=kw.get("n_steps", 24),
                                             internal_batch_size=kw.get("internal_batch_size", 64)).abs().sum(1)
            for p in targets]
    return torch.stack(maps, 1), scores


def _smoothgrad(model, pixels, f, targets, *, seed, **kw):
    """SmoothGrad: captum's Saliency averaged over nt_samples noisy copies of the pixels. The noise is
    drawn on the CPU from `seed`, so a GPU and the CPU average the same noise (captum's NoiseTunnel
    draws it on the pixels' device, whose generator differs); the caller's RNG state is untouched."""
    from captum.attr import Saliency
    scores = _pixel_scores(pixels, f)
    g = torch.Generator().manual_seed(seed)
    noise = [torch.randn(pixels.shape, generator=g) * kw.get("stdevs", 0.3)
             for _ in range(kw.get("nt_samples", 12))]  # nt_samples x (B, 3, H, W)
    saliency = Saliency(f)
    maps = []
    with torch.random.fork_rng(devices=[pixels.device] if pixels.device.type == "cuda" else []):
        for p in targets:
            total = sum(saliency.attribute(pixels + e.to(pixels.device), target=p, abs=True) for e in noise)
            maps.append((total / len(noise)).abs().sum(1))  # (B, H, W)
    return torch.stack(maps, 1), scores


# -- the methods --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Method:
    applies: Callable  # model -> bool
    maps: Callable  # (model, pixels, f, targets, *, layer, start_layer, seed, **kwargs) -> (maps, scores)


def _any_model(model) -> bool:
    return True


METHODS = {  # a new method: one function above and one entry here
    "relevance": Method(is_vit, lambda model, pixels, f, targets, *, start_layer, **kw:
                        _vit_maps(model, pixels, f, targets, "relevance", start_layer)),
    "rollout": Method(is_vit, lambda model, pixels, f, targets, *, start_layer, **kw:
                      _vit_maps(model, pixels, f, targets, "rollout", start_layer)),
    "decomposition": Method(decomposition.decomposable, lambda model, pixels, f, targets, *, start_layer, **kw:
                            _decomposition_maps(model, pixels, f, targets, start_layer)),
    "gradcam": Method(has_gradcam, lambda model, pixels, f, targets, *, layer, **kw:
                      _gradcam_maps(model, pixels, f, targets, layer, plus=False)),
    "gradcam++": Method(has_gradcam, lambda model, pixels, f, targets, *, layer, **kw:
                        _gradcam_maps(model, pixels, f, targets, layer, plus=True)),
    "integrated_gradients": Method(_any_model, _integrated_gradients),
    "smoothgrad": Method(_any_model, _smoothgrad),
    "occlusion": Method(_any_model, _occlusion),
    "random": Method(_any_model, _random),
}
PIXEL_METHODS = [name for name, method in METHODS.items() if method.applies is _any_model]


# -- the entry point ----------------------------------------------------------------------------

def attribute(model, images, texts: list[str], method: str = "auto", target: str = "similarity", labels=None,
              layer=None, start_layer: int = -1, batch_size: int = 16, seed: int = 0, progress: bool = True,
              cache=True, **method_kwargs) -> Attribution:
    """Maps of where each image matches each text: maps (N, P, H, W) in [0, 1], scores (N, P).
    With `labels` (one text index per image) only that text is explained: maps (N, 1, H, W).
    method: 'auto' (relevance for ViTs, gradcam for ResNets) or one of list_methods(model).
    target: 'similarity' (logit_scale * cosine) or 'softmax' (probability among `texts`, i.e. a
    zero-shot class). Text embeddings come through the cache; images go in batches of batch_size.
    Results are kept in the model's cache folder under the model's fingerprint, the images' content
    and every parameter (lab.core.memo): a repeated call reads them back. cache: True, a folder, or False."""
    methods = list_methods(model)
    if method == "auto":
        method = methods[0]
    if method not in methods:
        raise BadInput(f"method {method!r} does not apply to {model.name}; choose one of {methods}")
    if not texts:
        raise BadInput("attribute() needs at least one text to explain the match with")
    images = list(images)
    if labels is not None and len(labels) != len(images):
        raise BadInput(f"labels has {len(labels)} entries for {len(images)} images: give one text index per image")
    if labels is not None and not all(0 <= int(t) < len(texts) for t in labels):
        raise BadInput(f"labels must index the {len(texts)} texts (0..{len(texts) - 1}); got {sorted(set(labels))[:5]}")
    texts = list(texts)

    def compute() -> dict:
        return _attribute(model, images, texts, method, target, labels, layer, start_layer, batch_size, seed,
                          progress, method_kwargs)
    try:
        parts = [image_keys(model, images), texts, method, target, None if labels is None else np.asarray(labels),
                 layer, start_layer, batch_size, seed, method_kwargs]
    except OSError:  # a missing file: the computation reports it per image
        parts = None
    found = compute() if parts is None else memoized(model, "maps", parts, compute, cache)
    return Attribution(found["maps"], found["scores"], found["views"], method, texts)


def _attribute(model, images, texts, method, target, labels, layer, start_layer, batch_size, seed, progress,
               method_kwargs) -> dict:
    text_emb = torch.from_numpy(model.encode_texts(texts, progress=False)).to(model.device)  # (P, D)
    f = score_fn(model, text_emb, target)
    maps, scores, views = [], [], []
    was_training = model.module.training
    model.module.eval()
    frozen = [p for p in model.module.parameters() if p.requires_grad]
    for p in frozen:  # gradients start at the pixels or at a layer's output; weight gradients would only cost time
        p.requires_grad_(False)
    try:
        starts = range(0, len(images), batch_size)
        for s in tqdm(starts, desc=f"{method} maps", disable=not progress or len(starts) < 2):
            pixels, view = model_inputs(model, images[s:s + batch_size])
            targets = list(range(len(texts))) if labels is None else \
                [torch.tensor(np.array(labels[s:s + batch_size]), device=model.device)]
            with torch.enable_grad():
                m, sc = METHODS[method].maps(model, pixels, f, targets, layer=layer, start_layer=start_layer,
                                             seed=seed + s, **method_kwargs)
            maps.append(_normalize_maps(m))
            sc = sc.detach().float()
            scores.append((sc if labels is None else _pick(sc, targets[0])[:, None]).cpu().numpy())
            views.append(view)
    finally:
        if was_training:
            model.module.train()
        for p in frozen:
            p.requires_grad_(True)
    return {"maps": np.concatenate(maps), "scores": np.concatenate(scores), "views": np.concatenate(views)}


def text_relevance_applies(model) -> bool:
    """Whether `text_relevance` can read this model's text tower."""
    return text_tower(model.module) is not None


def text_relevance(model, image, text: str, start_layer: int = 0) -> tuple[list[str], np.ndarray]:
    """Which tokens of `text` drive its match with `image`: the relevance rule over the text
    transformer, read at the end-of-text token's row -> (token strings, relevance in [0, 1])."""
    module, tower = model.module, text_tower(model.module)
    if tower is None:
        raise BadInput(f"text relevance reads an open_clip text transformer pooled at its end-of-text token; "
                       f"{model.name}'s text tower is another ({type(getattr(module, 'text', module)).__name__})")
    tokens = model.tokenizer([text]).to(model.device)  # (1, L)
    fit_torch()
    pixels, _ = model_inputs(model, [image])
    with torch.no_grad():
        img = F.normalize(module.encode_image(pixels).float(), dim=-1)  # (1, D)
    # the token embeddings start the graph, so frozen weights do not matter
    hook = tower.token_embedding.register_forward_hook(lambda m, i, out: out.requires_grad_(True))
    with torch.enable_grad(), keep_attention(tower.transformer) as attentions:
        try:
            txt = F.normalize(module.encode_text(tokens).float(), dim=-1)
        finally:
            hook.remove()
        score = (model.logit_scale * img * txt).sum()
        grads = torch.autograd.grad(score, attentions)
    R = relevance_from_attention(attentions, grads, start_layer)[0]  # (L, L)
    eot = int(tokens[0].argmax())  # the end-of-text token has the largest id in CLIP's vocabulary
    rel = R[eot, 1:eot].detach().cpu()  # without the start and end tokens
    rel = ((rel - rel.min()) / (rel.max() - rel.min()).clamp(min=1e-12)).numpy()
    decoder = getattr(model.tokenizer, "decoder", None)
    words = [decoder[int(t)].replace("</w>", "") if decoder else str(int(t)) for t in tokens[0, 1:eot]]
    return words, rel
