"""Building a CLIP from its source (a checkpoint file, an open_clip tag, a hub schema, a seeded
random init) into the parts `ClipModel` runs: the torch module, tokenizer, preprocessing config
and a digest of the weights. Imports torch and open_clip; `lab.core.models` imports this module only
when a model must actually run (a fully cached run never does).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import socket
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlparse

import torch

from ..errors import ModelNotAvailable
from .checkpoints import LAB_FORMAT, infer_openai_config, read_checkpoint
from .hub import offline, require_hub_files
from .registry import OPENAI_MODELS, cached_pretrained_file, open_clip


def tensor_digest(state: dict) -> str:
    """sha256 over a state dict's names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(f"{k}:{state[k].dtype}:{tuple(state[k].shape)}".encode())
        t = state[k].detach().cpu().contiguous().reshape(-1)
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def build_module(model_cfg: dict) -> torch.nn.Module:
    """An open_clip CLIP / CustomTextCLIP / CoCa from its config, randomly initialized."""
    oc = open_clip()
    cfg = copy.deepcopy(model_cfg)
    custom = cfg.pop("custom_text", False) or "hf_model_name" in cfg.get("text_cfg", {})
    if "hf_model_name" in cfg.get("text_cfg", {}):
        cfg["text_cfg"]["hf_model_pretrained"] = False
    if "timm_model_name" in cfg.get("vision_cfg", {}):
        cfg["vision_cfg"]["timm_model_pretrained"] = False
    cls = oc.CoCa if "multimodal_cfg" in cfg else oc.CustomTextCLIP if custom else oc.CLIP
    return cls(**cfg)


def _load_state(module: torch.nn.Module, state: dict, where: str, allow_extra: bool):
    expected = module.state_dict()
    if "logit_scale" in state and state["logit_scale"].shape != expected["logit_scale"].shape:
        state["logit_scale"] = state["logit_scale"].reshape(expected["logit_scale"].shape)
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if missing or wrong or (extra and not allow_extra):
        detail = "; ".join(filter(None, [
            missing and f"missing {len(missing)} weights (e.g. {missing[:3]})",
            extra and not allow_extra and f"{len(extra)} unknown weights (e.g. {extra[:3]})",
            wrong and f"shape mismatch: {wrong[:3]}"]))
        raise ModelNotAvailable(f"{where} does not fit the architecture: {detail}. Name the right "
                                "architecture, or pass the file alone to infer it.")
    module.load_state_dict({k: state[k] for k in expected})


def _match_openai_arch(cfg: dict) -> str | None:
    """The model-card architecture an inferred config equals, if any."""
    for arch in OPENAI_MODELS.values():
        ref = open_clip().get_model_config(arch)
        if ref["embed_dim"] == cfg["embed_dim"] and all(
                ref[t].get(k) == v for t in ("vision_cfg", "text_cfg") for k, v in cfg[t].items()):
            return arch
    return None


@contextlib.contextmanager
def _hub_files(name: str, model_cfg: dict):
    """While open_clip builds a model whose text tower comes from the hub: fail at once naming a file an
    offline machine lacks (lab.core.hub.require_hub_files), and keep huggingface_hub offline when there is
    no network, so what is cached loads with no retries. Other models pass through untouched."""
    if not require_hub_files(name, model_cfg):
        yield
        return
    import huggingface_hub.constants as hub
    before = hub.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = before or offline()
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = before


@contextlib.contextmanager
def _empty_filled_with_nan():
    """torch.empty fills float tensors with NaN (not whatever memory held), so a parameter that a module
    never initializes cannot make two seeded builds differ."""
    import torch.utils.deterministic as det
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              det.fill_uninitialized_memory)
    torch.use_deterministic_algorithms(True, warn_only=True)
    det.fill_uninitialized_memory = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        det.fill_uninitialized_memory = before[2]


def _tokenizer(arch: str | None, model_cfg: dict):
    oc = open_clip()
    ctx = model_cfg.get("text_cfg", {}).get("context_length", 77)
    if arch and oc.get_model_config(arch) is not None:
        with _hub_files(arch, model_cfg):
            return oc.get_tokenizer(arch, context_length=ctx)
    return oc.SimpleTokenizer(context_length=ctx)


def _default_preprocess(module, overrides: dict | None = None) -> dict:
    from open_clip.transform import PreprocessCfg
    cfg = asdict(PreprocessCfg())
    cfg.update({k: v for k, v in (overrides or {}).items() if k in cfg})
    cfg["size"] = module.visual.image_size
    if isinstance(cfg["size"], (tuple, list)):
        cfg["size"] = cfg["size"][0] if cfg["size"][0] == cfg["size"][1] else list(cfg["size"])
    return cfg


def from_file(path, *, arch, quick_gelu, trust, cache, name=None, preprocess=None) -> dict:
    """Parts of the model in a checkpoint file (lab's format, an OpenAI release file, a state dict)."""
    state, meta = read_checkpoint(path, trust)
    if meta["source"] == LAB_FORMAT:
        model_cfg, arch = meta["model_cfg"], meta.get("arch")
        preprocess = meta.get("preprocess_cfg", preprocess)
    elif arch:
        model_cfg = open_clip().get_model_config(arch)
        if model_cfg is None:
            raise ModelNotAvailable(f"unknown architecture {arch!r}; see lab.list_models()")
        model_cfg = copy.deepcopy(model_cfg)
    else:
        model_cfg = infer_openai_config(state)
        arch = _match_openai_arch(model_cfg)
        meta["inferred"] = True
    if quick_gelu is not None:
        model_cfg["quick_gelu"] = bool(quick_gelu)
    elif meta["source"] == "torchscript" or meta.get("inferred"):
        model_cfg["quick_gelu"] = True  # OpenAI release files and OpenAI-layout dicts were trained with QuickGELU
    module = build_module(model_cfg)
    _load_state(module, state, os.fspath(path), allow_extra=meta["source"] == "torchscript")
    display = name or f"{arch or 'custom'} ({os.path.basename(path)})"
    return dict(module=module, name=display, model_cfg=model_cfg,
                preprocess_cfg=_default_preprocess(module, preprocess), tokenizer=_tokenizer(arch, model_cfg),
                weights_digest=cache.file_digest(path), source=os.path.abspath(path))


def from_tag(arch, tag, *, quick_gelu, trust, cache, cache_dir) -> dict:
    """Parts of an open_clip pretrained tag: from the local download caches, else downloaded."""
    oc = open_clip()
    tag_cfg = oc.get_pretrained_cfg(arch, tag)
    if not tag_cfg:
        tags = oc.list_pretrained_tags_by_model(arch)
        raise ModelNotAvailable(
            f"{tag!r} is not a pretrained tag of {arch} nor an existing file. Known tags: {tags or 'none'}; "
            "or pass a checkpoint file (pretrained='/path/to/weights.pt'), or pretrained='random'.")
    path = cached_pretrained_file(arch, tag, cache_dir)
    if path is None:
        if tag_cfg.get("hf_hub"):
            where = f"Hugging Face Hub {tag_cfg['hf_hub']}"
            host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
        else:
            where, host = tag_cfg.get("url"), urlparse(tag_cfg.get("url", "")).hostname
        try:
            socket.getaddrinfo(host, 443)  # offline: fail now instead of after the hub's retries
            path = oc.download_pretrained(tag_cfg, cache_dir=cache_dir)
        except Exception as e:
            reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            qg = ", quick_gelu=True" if tag_cfg.get("quick_gelu") else ""
            raise ModelNotAvailable(
                f"cannot load {arch} with pretrained={tag!r}: its weights are not in the local cache and "
                f"the download from {where} failed ({reason}). If this machine is offline, fetch the file "
                f"elsewhere and pass it: lab.load_model('{arch}', pretrained='/path/to/file'{qg}).") from None
    if quick_gelu is None:
        quick_gelu = bool(tag_cfg.get("quick_gelu") or oc.get_model_config(arch).get("quick_gelu"))
    return from_file(path, arch=arch, quick_gelu=quick_gelu, trust=trust, cache=cache,
                     name=f"{arch}:{tag}", preprocess=tag_cfg)


def from_schema(name, *, cache_dir, display=None) -> dict:
    """Parts of an open_clip 'hf-hub:org/repo' or 'local-dir:/path' model (open_clip's schemas)."""
    oc = open_clip()
    model_cfg = {}
    if name.startswith("local-dir:"):
        config = Path(name[len("local-dir:"):]) / "open_clip_config.json"
        if not config.is_file():
            raise ModelNotAvailable(f"{display or name}: no open_clip_config.json in {config.parent}")
        model_cfg = json.loads(config.read_text()).get("model_cfg", {})
    try:
        with _hub_files(display or name, model_cfg):
            module = oc.create_model(name, cache_dir=cache_dir, require_pretrained=True)
            tokenizer = oc.get_tokenizer(name, cache_dir=cache_dir)
    except Exception as e:
        raise ModelNotAvailable(
            f"cannot load {name}: {str(e).strip().splitlines()[0][:200]}. Offline? Download the repo and use "
            "'local-dir:/path/to/folder', or pass a checkpoint file.") from None
    pcfg = oc.get_model_preprocess_cfg(module)
    return dict(module=module, name=display or name, model_cfg={"schema": display or name}, preprocess_cfg=_default_preprocess(module, pcfg),
                tokenizer=tokenizer, weights_digest=tensor_digest(module.state_dict()), source=name)


def random_init(arch, *, quick_gelu, seed=0) -> dict:
    """Parts of an architecture with seeded random weights (tests, benchmarks, sanity checks)."""
    model_cfg = copy.deepcopy(open_clip().get_model_config(arch))
    if quick_gelu is not None:
        model_cfg["quick_gelu"] = bool(quick_gelu)
    with torch.random.fork_rng(devices=[]), _hub_files(arch, model_cfg), _empty_filled_with_nan():
        torch.manual_seed(seed)
        module = build_module(model_cfg)
    with torch.no_grad():
        for p in module.parameters():  # left as torch.empty by its module (CoCa's text_decoder.text_projection)
            if p.is_floating_point() and p.isnan().all():
                p.zero_()
    return dict(module=module, name=f"{arch}:random", model_cfg=model_cfg, preprocess_cfg=_default_preprocess(module),
                tokenizer=_tokenizer(arch, model_cfg), weights_digest=tensor_digest(module.state_dict()),
                source=f"random init, seed {seed}")
