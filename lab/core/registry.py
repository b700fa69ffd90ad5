"""Every model name lab knows, and which of them load right now without a network.

Names:
- lab's built-in tiny models (checkpoints shipped in lab/checkpoints/, configs in lab/model_configs/);
- OpenAI's names from the CLIP model card ("RN50", "ViT-B/32", "ViT-L/14@336px", ...), which
  mean OpenAI's weights, as `clip.load` does;
- open_clip architectures ("ViT-B-32") with a pretrained tag, given as `pretrained="openai"` or
  as one string "ViT-B-32:laion2b_s34b_b79k";
- "hf-hub:org/repo" and model folders: open_clip's (open_clip_config.json) and transformers' (config.json:
  CLIP, SigLIP, SigLIP 2, MetaCLIP 2; lab.core.hub decides which), "local-dir:/path", and checkpoint files.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

__all__ = ["CONFIG_DIR", "CHECKPOINT_DIR", "OPENAI_MODELS", "open_clip", "builtin_models", "split_name",
           "cached_pretrained_file", "model_info", "list_pretrained", "list_models"]

CONFIG_DIR = Path(__file__).parent.parent / "model_configs"  # package data stays at the top of lab/
CHECKPOINT_DIR = Path(__file__).parent.parent / "checkpoints"

# The nine models of the CLIP model card, by OpenAI's names -> open_clip architecture.
OPENAI_MODELS = {
    "RN50": "RN50", "RN101": "RN101", "RN50x4": "RN50x4", "RN50x16": "RN50x16", "RN50x64": "RN50x64",
    "ViT-B/32": "ViT-B-32", "ViT-B/16": "ViT-B-16", "ViT-L/14": "ViT-L-14", "ViT-L/14@336px": "ViT-L-14-336",
}


@functools.cache
def open_clip():
    """open_clip, imported on first use (with torch, 4-5 s) and with lab's model configs added."""
    import open_clip as oc
    oc.add_model_config(CONFIG_DIR)
    return oc


def builtin_models() -> dict[str, Path]:
    """lab's own models: name -> checkpoint file shipped with the package."""
    return {p.stem: p for p in sorted(CHECKPOINT_DIR.glob("*.pt"))}


def split_name(name: str, pretrained: str | None) -> tuple[str, str | None]:
    """('ViT-B/32', None) -> ('ViT-B-32', 'openai'); 'ViT-B-32:laion2b_s34b_b79k' -> (arch, tag)."""
    if ":" in name and not name.startswith(("hf-hub:", "local-dir:")):
        name, tag = name.split(":", 1)
        pretrained = pretrained or tag
    if name in OPENAI_MODELS:
        return OPENAI_MODELS[name], pretrained or "openai"
    return name.replace("/", "-"), pretrained


def cached_pretrained_file(arch: str, tag: str, cache_dir: str | None = None) -> str | None:
    """The local file of an open_clip pretrained tag if it was downloaded before, else None.
    Looks only at the disk."""
    cfg = open_clip().get_pretrained_cfg(arch, tag)
    if cfg.get("file"):
        return cfg["file"] if os.path.isfile(cfg["file"]) else None
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache
        repo, filename = os.path.split(cfg["hf_hub"])  # 'org/repo/' names the default file
        filename = filename or "open_clip_pytorch_model.bin"
        stem, _ = os.path.splitext(filename)
        for candidate in (stem + ".safetensors", "open_clip_model.safetensors", filename):
            hit = try_to_load_from_cache(repo, candidate, cache_dir=cache_dir)
            if isinstance(hit, str) and os.path.isfile(hit):
                return hit
    if cfg.get("url"):
        path = Path(cache_dir or "~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        if path.is_file():
            return str(path)
    return None


def model_info(name: str, pretrained: str | None = None) -> dict:
    """What a name resolves to, without loading weights: architecture, tag, input resolution,
    embedding size, and whether the weights need QuickGELU."""
    arch, tag = split_name(name, pretrained)
    cfg = open_clip().get_model_config(arch)
    if cfg is None:
        raise KeyError(f"unknown model {name!r}; see lab.list_models()")
    size = cfg["vision_cfg"].get("image_size", 224)
    quick_gelu = bool(cfg.get("quick_gelu") or (tag and open_clip().get_pretrained_cfg(arch, tag).get("quick_gelu")))
    return {"arch": arch, "pretrained": tag, "image_size": size if isinstance(size, int) else size[0],
            "embed_dim": cfg["embed_dim"], "quick_gelu": quick_gelu}


def list_pretrained() -> list[str]:
    """Every open_clip 'architecture:tag' pair."""
    return open_clip().list_pretrained(as_str=True)


def list_models(available: bool = False, cache_dir: str | None = None) -> list[str]:
    """Every model name lab knows; with available=True, only those that load right now without
    a network (built-ins, pretrained weights already in the local download caches, and transformers
    checkpoints in the Hugging Face cache as "hf-hub:org/repo")."""
    from .hub import cached_transformers_models
    builtins = list(builtin_models())
    if available:
        cached = [f"{a}:{t}" for a, t in open_clip().list_pretrained() if cached_pretrained_file(a, t, cache_dir)]
        return builtins + cached + cached_transformers_models(cache_dir)
    return builtins + list(OPENAI_MODELS) + open_clip().list_models() + list_pretrained()
