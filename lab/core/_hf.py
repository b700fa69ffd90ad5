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

import json
import math
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelNotAvailable
from .hub import folder_files_digest, transformers_type, weights_file

__all__ = ["preprocess_cfg", "TransformersTokenizer", "TransformersCLIP", "clip_as_open_clip", "from_transformers"]

_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}  # PIL's numbers


def _processor_config(folder: Path) -> dict:
    if (folder / "preprocessor_config.json").is_file():
        return json.loads((folder / "preprocessor_config.json").read_text())
    if (folder / "processor_config.json").is_file():
        cfg = json.loads((folder / "processor_config.json").read_text())
        if "image_processor" in cfg:
            return cfg["image_processor"]
    raise ModelNotAvailable(f"{folder} has no preprocessor_config.json: the image processor's resize, crop, mean "
                            "and std are needed to feed the model as it was trained. Save the checkpoint's "
                            "processor there (AutoProcessor.from_pretrained(repo).save_pretrained(folder)).")


def _hw(size) -> list[int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        return [size, size]
    if "height" in size:
        return [int(size["height"]), int(size["width"])]
    return None


def preprocess_cfg(folder: Path) -> dict:
    """The folder's image processor as the lab's preprocessing config: resize (a shortest edge (int) or
    a squash to [H, W]), crop [H, W] rounded down as transformers does, interpolation, mean and std."""
    p = _processor_config(folder)
    size = p.get("size")
    resize = None
    if p.get("do_resize", True) and size is not None:
        resize = int(size["shortest_edge"]) if isinstance(size, dict) and "shortest_edge" in size else _hw(size)
    crop = _hw(p.get("crop_size")) if p.get("do_center_crop", False) else None
    if p.get("do_rescale", True) and not math.isclose(p.get("rescale_factor", 1 / 255), 1 / 255):
        raise ModelNotAvailable(f"{folder}: rescale_factor {p['rescale_factor']} is not 1/255; the lab rescales uint8 "
                                "pixels by 1/255 only")
    out = crop or (resize if isinstance(resize, list) else None)
    if out is None:
        raise ModelNotAvailable(f"{folder}: its processor gives no fixed output size (size {size}, crop "
                                f"{p.get('crop_size')}); the lab needs one")
    mean = p.get("image_mean", [0.5, 0.5, 0.5]) if p.get("do_normalize", True) else [0.0, 0.0, 0.0]
    std = p.get("image_std", [0.5, 0.5, 0.5]) if p.get("do_normalize", True) else [1.0, 1.0, 1.0]
    return {"size": out[0] if out[0] == out[1] else out, "mode": "RGB", "mean": list(mean), "std": list(std),
            "interpolation": _RESAMPLE[int(p.get("resample", 3))],
            "resize_mode": "shortest" if isinstance(resize, int) else "squash", "fill_color": 0,
            "resize": resize, "crop": crop, "crop_rounding": "floor"}


class TransformersTokenizer:
    """A checkpoint's own tokenizer as the lab calls one: texts -> (B, context_length) int64 ids, padded
    to the context on the right, as the model was trained (SigLIP: to max_length 64, with no attention
    mask; SigLIP 2's Gemma tokenizer pads on the left unless told otherwise)."""

    def __init__(self, folder: Path, context_length: int):
        from transformers import AutoTokenizer
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        self.tokenizer.padding_side = "right"
        self.context_length = context_length
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.eos_id = self.tokenizer.eos_token_id

    def __call__(self, texts) -> torch.Tensor:
        return self.tokenize_counted(list(texts))[0]

    def tokenize_counted(self, texts: list[str]) -> tuple[torch.Tensor, int]:
        """-> (ids (B, L) int64, how many texts the context cut short)."""
        full = self.tokenizer(texts, add_special_tokens=True)["input_ids"]
        ids = self.tokenizer(texts, padding="max_length", max_length=self.context_length, truncation=True,
                             return_tensors="pt")["input_ids"]
        return ids.long(), sum(len(f) > self.context_length for f in full)


def _features(out) -> torch.Tensor:
    """get_*_features: a tensor in transformers 4.x, an output object with pooler_output in 5.x."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class TransformersCLIP(nn.Module):
    """A transformers CLIP-family model behind open_clip's interface. `text_mask` says whether the
    model is fed an attention mask (rebuilt from the padded ids: tokens up to the first pad, or up to
    and including the first end-of-text when padding is end-of-text too)."""

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
        pads = ids == self.pad_id
        if self.pad_id == self.eos_id:  # the first end-of-text is a real token
            first = torch.where(pads.any(1), pads.int().argmax(1), ids.shape[1])  # (B,)
            return (torch.arange(ids.shape[1], device=ids.device)[None] <= first[:, None]).long()
        return (~pads).long()

    def encode_image(self, pixels: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        x = _features(self.model.get_image_features(pixel_values=pixels))  # (B, D)
        return nn.functional.normalize(x, dim=-1) if normalize else x

    def encode_text(self, ids: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        x = _features(self.model.get_text_features(input_ids=ids, attention_mask=self.attention_mask(ids)))  # (B, D)
        return nn.functional.normalize(x, dim=-1) if normalize else x

    def forward(self, image=None, text=None):
        return (None if image is None else self.encode_image(image, normalize=True),
                None if text is None else self.encode_text(text, normalize=True), self.logit_scale.exp())


def _open_clip_cfg(config) -> dict:
    """A transformers CLIPConfig as open_clip's model config."""
    v, t = config.vision_config, config.text_config
    for tower in (v, t):
        if tower.hidden_act not in ("quick_gelu", "gelu"):
            raise ModelNotAvailable(f"CLIP with activation {tower.hidden_act!r}: open_clip has quick_gelu and gelu")
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


def from_transformers(folder, *, cache, name=None) -> dict:
    """Parts of the transformers checkpoint in `folder` (see the module docstring)."""
    import transformers
    folder = Path(folder)
    model_type = transformers_type(folder)
    weights = weights_file(folder)
    model = transformers.AutoModel.from_pretrained(folder, local_files_only=True, trust_remote_code=False,
                                                   use_safetensors=weights.suffix == ".safetensors").eval()
    context = model.config.text_config.max_position_embeddings
    tokenizer = TransformersTokenizer(folder, context)
    eos_last = tokenizer.eos_id in (2, model.config.text_config.vocab_size - 1)  # 2: transformers' legacy argmax
    if model_type == "clip" and eos_last:
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
