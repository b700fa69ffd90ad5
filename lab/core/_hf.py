"""Hugging Face transformers checkpoints (a folder as the hub serves it: config.json, weights, tokenizer
and processor files) as the parts `ClipModel` runs. Imports torch and transformers; `lab.core.models`
calls `from_transformers` only when such a model must actually run.

- CLIP (and MetaCLIP v1, the same class) is remapped into open_clip's `CLIP`, so every hook the
  studies use (attention relevance, rollout, the ViT's blocks) works on it unchanged. A CLIP whose
  end-of-text token is not the vocabulary's last id (open_clip pools at the argmax id) is wrapped instead.
- SigLIP (and the fixed-resolution SigLIP 2 checkpoints, model_type "siglip") and MetaCLIP 2 run
  through `TransformersCLIP`, a thin wrapper around transformers' own model with open_clip's interface
  (`encode_image`, `encode_text`, `logit_scale`, `logit_bias`, `visual`).

Weights are read by transformers' `from_pretrained` with `trust_remote_code=False`: a safetensors file,
or a `pytorch_model.bin` through `torch.load(weights_only=True)` — tensors only, never code.
Preprocessing comes from the folder's own preprocessor_config.json (`preprocess_cfg`), text is
tokenized by its own tokenizer, padded as the model was trained (`TransformersTokenizer`).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelNotAvailable
from .hub import folder_files_digest, transformers_type, weights_file

__all__ = ["preprocess_cfg", "TransformersTokenizer", "TransformersCLIP", "clip_as_open_clip", "from_transformers"]

_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}  # PIL's numbers


def _image_processor(folder: Path):
    """The checkpoint's own image processor, as transformers builds it: its class's defaults and the
    folder's preprocessor_config.json, sizes normalized (an int `size` is a shortest edge)."""
    from transformers import AutoImageProcessor
    try:
        return AutoImageProcessor.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise ModelNotAvailable(
            f"{folder}: no image processor to read ({str(e).strip().splitlines()[0][:160]}); its resize, crop, mean "
            "and std are needed to feed the model as it was trained. Save the checkpoint's processor there "
            "(AutoProcessor.from_pretrained(repo).save_pretrained(folder)).") from None


def _hw(size) -> list[int] | None:
    """A {"height", "width"} size -> [H, W]; None for anything else."""
    height, width = (getattr(size, "height", None), getattr(size, "width", None)) if not isinstance(size, dict) \
        else (size.get("height"), size.get("width"))
    return [int(height), int(width)] if height is not None and width is not None else None


def _shortest_edge(size) -> int | None:
    edge = size.get("shortest_edge") if isinstance(size, dict) else getattr(size, "shortest_edge", None)
    return int(edge) if edge is not None else None


def preprocess_cfg(folder: Path) -> dict:
    """The folder's image processor as the lab's preprocessing config: resize (a shortest edge (int) or
    a squash to [H, W]), crop [H, W] rounded down as transformers does, interpolation, mean and std."""
    p = _image_processor(folder)
    resize = None
    if getattr(p, "do_resize", True) and getattr(p, "size", None) is not None:
        resize = _shortest_edge(p.size) or _hw(p.size)
    crop = _hw(p.crop_size) if getattr(p, "do_center_crop", False) and getattr(p, "crop_size", None) else None
    if getattr(p, "do_rescale", True) and not math.isclose(getattr(p, "rescale_factor", 1 / 255), 1 / 255):
        raise ModelNotAvailable(f"{folder}: rescale_factor {p.rescale_factor} is not 1/255; the lab rescales uint8 "
                                "pixels by 1/255 only")
    out = crop or (resize if isinstance(resize, list) else None)
    if out is None:
        raise ModelNotAvailable(f"{folder}: its processor gives no fixed output size (size {getattr(p, 'size', None)}, "
                                f"crop {getattr(p, 'crop_size', None)}); the lab needs one")
    normalize = getattr(p, "do_normalize", True)
    mean = [float(v) for v in p.image_mean] if normalize else [0.0, 0.0, 0.0]
    std = [float(v) for v in p.image_std] if normalize else [1.0, 1.0, 1.0]
    return {"size": out[0] if out[0] == out[1] else out, "mode": "RGB", "mean": mean, "std": std,
            "interpolation": _RESAMPLE[int(getattr(p, "resample", 3))],
            "resize_mode": "shortest" if isinstance(resize, int) else "squash", "fill_color": 0,
            "resize": resize, "crop": crop, "crop_rounding": "floor"}


class TransformersTokenizer:
    """A checkpoint's own tokenizer as the lab calls one: texts -> (B, context_length) int64 ids, padded
    to the context on the right, as the model was trained (SigLIP: to max_length 64, with no attention
    mask; SigLIP 2's Gemma tokenizer, which pads on the left by default, on the right and lowercased, as
    SigLIP 2 was trained on lowercased text)."""

    def __init__(self, folder: Path, context_length: int):
        from transformers import AutoTokenizer
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:  # pad with end-of-text, as CLIP's tokenizers do
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.lowercase = "Gemma" in type(self.tokenizer).__name__
        self.context_length = context_length
        self.pad_id, self.eos_id = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id

    def __call__(self, texts) -> torch.Tensor:
        return self.tokenize_counted([texts] if isinstance(texts, str) else list(texts))[0]

    def tokenize_counted(self, texts: list[str]) -> tuple[torch.Tensor, int]:
        """-> (ids (B, L) int64, how many texts the context cut short)."""
        texts = [t.lower() for t in texts] if self.lowercase else texts
        full = self.tokenizer(texts, add_special_tokens=True)["input_ids"]
        ids = self.tokenizer(texts, padding="max_length", max_length=self.context_length, truncation=True,
                             return_tensors="pt")["input_ids"]
        return ids.long(), sum(len(f) > self.context_length for f in full)


def _features(out) -> torch.Tensor:
    """get_*_features: a tensor in transformers 4.x, an output object with pooler_output in 5.x."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class TransformersCLIP(nn.Module):
    """A transformers CLIP-family model behind open_clip's interface. `text_mask` says whether the
    model is fed an attention mask, rebuilt from the right-padded ids: every token up to and including
    the first end-of-text (or, with no end-of-text id, every token that is not padding)."""

    def __init__(self, model: nn.Module, text_mask: bool, pad_id: int, eos_id: int | None):
        super().__init__()
        self.model, self.text_mask, self.pad_id, self.eos_id = model, text_mask, pad_id, eos_id
        self.visual = model.vision_model
        self.visual.image_size = model.config.vision_config.image_size

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.model.logit_scale

    @property
    def logit_bias(self) -> nn.Parameter | None:
        return getattr(self.model, "logit_bias", None)

    def attention_mask(self, ids: torch.Tensor) -> torch.Tensor | None:
        """(B, L) ids -> (B, L) 0/1 mask of the real tokens, or None when the model takes none."""
        if not self.text_mask:
            return None
        if self.eos_id is None:
            return (ids != self.pad_id).long()
        ends = ids == self.eos_id
        first = torch.where(ends.any(1), ends.int().argmax(1), ids.shape[1] - 1)  # (B,) the first end-of-text
        return (torch.arange(ids.shape[1], device=ids.device)[None] <= first[:, None]).long()

    def encode_image(self, pixels: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        x = _features(self.model.get_image_features(pixel_values=pixels))  # (B, D)
        return nn.functional.normalize(x, dim=-1) if normalize else x

    def encode_text(self, ids: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        x = _features(self.model.get_text_features(input_ids=ids, attention_mask=self.attention_mask(ids)))  # (B, D)
        return nn.functional.normalize(x, dim=-1) if normalize else x

    def forward(self, image=None, text=None):
        """As open_clip's CLIP: normalized features, exp(logit_scale), and the bias when the model has one."""
        out = (None if image is None else self.encode_image(image, normalize=True),
               None if text is None else self.encode_text(text, normalize=True), self.logit_scale.exp())
        return out + (self.logit_bias,) if self.logit_bias is not None else out


def _remappable(config, tokenizer: TransformersTokenizer) -> bool:
    """Whether open_clip's CLIP computes what transformers' CLIPModel does with these weights: its
    activations and LayerNorm eps, and its text pooling (open_clip takes the largest id; transformers
    does too for a legacy config (eos_token_id 2), else it takes the first end-of-text, the same when
    end-of-text is the vocabulary's last id)."""
    v, t = config.vision_config, config.text_config
    same_blocks = all(tower.hidden_act in ("quick_gelu", "gelu") and tower.hidden_act == v.hidden_act
                      and math.isclose(tower.layer_norm_eps, 1e-5) for tower in (v, t))
    argmax = t.eos_token_id == 2 or t.eos_token_id == tokenizer.eos_id == t.vocab_size - 1
    return same_blocks and argmax


def _open_clip_cfg(config) -> dict:
    """A transformers CLIPConfig as open_clip's model config."""
    v, t = config.vision_config, config.text_config
    return {"embed_dim": config.projection_dim, "quick_gelu": v.hidden_act == "quick_gelu",
            "vision_cfg": {"image_size": v.image_size, "patch_size": v.patch_size, "width": v.hidden_size,
                           "layers": v.num_hidden_layers, "head_width": v.hidden_size // v.num_attention_heads,
                           "mlp_ratio": v.intermediate_size / v.hidden_size},
            "text_cfg": {"context_length": t.max_position_embeddings, "vocab_size": t.vocab_size,
                         "width": t.hidden_size, "heads": t.num_attention_heads, "layers": t.num_hidden_layers,
                         "mlp_ratio": t.intermediate_size / t.hidden_size}}


def _blocks(state: dict, src: str, dst: str, layers: int) -> dict:
    """transformers' encoder layers -> open_clip's residual attention blocks (q, k, v in one in_proj)."""
    out = {}
    for i in range(layers):
        s, d = f"{src}.encoder.layers.{i}", f"{dst}.resblocks.{i}"
        a = f"{s}.self_attn"
        for kind in ("weight", "bias"):
            out[f"{d}.attn.in_proj_{kind}"] = torch.cat([state[f"{a}.{p}_proj.{kind}"] for p in "qkv"])
            out[f"{d}.attn.out_proj.{kind}"] = state[f"{a}.out_proj.{kind}"]
            out[f"{d}.ln_1.{kind}"] = state[f"{s}.layer_norm1.{kind}"]
            out[f"{d}.ln_2.{kind}"] = state[f"{s}.layer_norm2.{kind}"]
            out[f"{d}.mlp.c_fc.{kind}"] = state[f"{s}.mlp.fc1.{kind}"]
            out[f"{d}.mlp.c_proj.{kind}"] = state[f"{s}.mlp.fc2.{kind}"]
    return out


def clip_as_open_clip(model) -> tuple[nn.Module, dict]:
    """A transformers CLIPModel -> (open_clip CLIP with the same weights, its model config)."""
    from ._build import build_module
    cfg = _open_clip_cfg(model.config)
    s = model.state_dict()
    v, t = "vision_model", "text_model"
    state = {"visual.class_embedding": s[f"{v}.embeddings.class_embedding"],
             "visual.conv1.weight": s[f"{v}.embeddings.patch_embedding.weight"],
             "visual.positional_embedding": s[f"{v}.embeddings.position_embedding.weight"],
             "visual.ln_pre.weight": s[f"{v}.pre_layrnorm.weight"], "visual.ln_pre.bias": s[f"{v}.pre_layrnorm.bias"],
             "visual.ln_post.weight": s[f"{v}.post_layernorm.weight"],
             "visual.ln_post.bias": s[f"{v}.post_layernorm.bias"],
             "visual.proj": s["visual_projection.weight"].T,
             "token_embedding.weight": s[f"{t}.embeddings.token_embedding.weight"],
             "positional_embedding": s[f"{t}.embeddings.position_embedding.weight"],
             "ln_final.weight": s[f"{t}.final_layer_norm.weight"], "ln_final.bias": s[f"{t}.final_layer_norm.bias"],
             "text_projection": s["text_projection.weight"].T, "logit_scale": s["logit_scale"].reshape(())}
    state |= _blocks(s, v, "visual.transformer", cfg["vision_cfg"]["layers"])
    state |= _blocks(s, t, "transformer", cfg["text_cfg"]["layers"])
    module = build_module(cfg)
    module.load_state_dict({k: v.contiguous() for k, v in state.items()}, strict=True)
    return module, cfg


def from_transformers(folder, *, cache, name=None, remap: bool = True) -> dict:
    """Parts of the transformers checkpoint in `folder` (see the module docstring). remap=False keeps a
    CLIP in transformers' own modules (how the two layouts are compared in the tests)."""
    import transformers
    folder = Path(folder)
    model_type = transformers_type(folder)
    weights = weights_file(folder)
    fp32 = {"dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype": torch.float32}
    model = transformers.AutoModel.from_pretrained(folder, local_files_only=True, trust_remote_code=False,
                                                   use_safetensors=weights.suffix == ".safetensors", **fp32).eval()
    context = model.config.text_config.max_position_embeddings
    tokenizer = TransformersTokenizer(folder, context)
    if model_type == "clip" and remap and _remappable(model.config, tokenizer):
        module, model_cfg = clip_as_open_clip(model)
        library = "open_clip (remapped from transformers)"
    else:
        text_mask = model_type != "siglip" and "attention_mask" in tokenizer.tokenizer.model_input_names
        module = TransformersCLIP(model, text_mask, tokenizer.pad_id, tokenizer.eos_id)
        model_cfg = {}
        library = "transformers"
    model_cfg = {**model_cfg, "format": "transformers", "model_type": model_type, "runs_on": library,
                 "transformers": transformers.__version__.split(".")[0],  # 4.x and 5.x may differ in the last bits
                 "files": folder_files_digest(folder)}
    return dict(module=module, name=name or f"{folder.name} ({model_type})", model_cfg=model_cfg,
                preprocess_cfg=preprocess_cfg(folder), tokenizer=tokenizer,
                weights_digest=cache.file_digest(str(weights)), source=str(folder.resolve()))
