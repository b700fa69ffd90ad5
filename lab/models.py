"""Load any CLIP (open_clip name + tag, OpenAI name, hub id, local checkpoint, lab built-in) as a
`ClipModel` that encodes images and texts to L2-normalized float32 embeddings through the cache.

    model = lab.load_model("ViT-B/32")                       # OpenAI weights (downloads once)
    model = lab.load_model("ViT-B-32", pretrained="laion2b_s34b_b79k")
    model = lab.load_model("/path/to/ViT-B-32.pt")           # OpenAI release file, arch inferred
    model = lab.load_model("lab-vit-tiny")                   # built in, offline
    emb = model.encode_images(paths)                          # (N, D) float32
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import socket
from dataclasses import asdict
from urllib.parse import urlparse

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.transform import PreprocessCfg, image_transform_v2

from . import encoding
from .cache import EmbeddingCache
from .checkpoints import LAB_FORMAT, infer_openai_config, read_checkpoint
from .errors import BadInput, ModelNotAvailable
from .images import MAX_PIXELS
from .registry import OPENAI_MODELS, builtin_models, cached_pretrained_file, split_name

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """CUDA, then MPS, then CPU, unless named."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_precision(precision: str | None, device: torch.device) -> str:
    """fp32 on CPU and MPS, fp16 autocast on CUDA, unless named."""
    if precision is None:
        return "fp16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise BadInput(f"precision={precision!r} is not one of {sorted(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu":
        raise BadInput("precision='fp16' needs a GPU; on the CPU use 'fp32' or 'bf16'")
    return precision


def tensor_digest(state: dict) -> str:
    """sha256 over a state dict's names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(f"{k}:{state[k].dtype}:{tuple(state[k].shape)}".encode())
        t = state[k].detach().cpu().contiguous().reshape(-1)
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class _PilToUint8:
    """The PIL part of a preprocessing pipeline, returning a (3, H, W) uint8 tensor."""

    def __init__(self, pil_ops):
        self.pil_ops = pil_ops

    def __call__(self, img):
        return torch.from_numpy(np.array(self.pil_ops(img), dtype=np.uint8, copy=True)).permute(2, 0, 1)


class _BatchNormalize:
    """ToTensor + Normalize for a whole (B, 3, H, W) uint8 batch, elementwise as torchvision does."""

    def __init__(self, mean, std):
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)

    def __call__(self, x):
        x = x.float().div(255)
        return x.sub_(self.mean.to(x.device)).div_(self.std.to(x.device))


def autocast(device: torch.device, precision: str):
    dtype = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


class ImageTower:
    """Preprocessed pixels (B, 3, H, W), float or uint8 -> L2-normalized float32 (B, D).
    Picklable, so CPU DataLoader workers can run it on their own batches."""

    def __init__(self, module, normalize_batch, device: torch.device, precision: str):
        self.module, self.normalize_batch, self.device, self.precision = module, normalize_batch, device, precision

    def __call__(self, pixels: torch.Tensor) -> np.ndarray:
        pixels = pixels.to(self.device, non_blocking=True)
        if pixels.dtype == torch.uint8:
            pixels = self.normalize_batch(pixels)
        with torch.inference_mode(), autocast(self.device, self.precision):
            feats = self.module.encode_image(pixels)
        return F.normalize(feats.float(), dim=-1).cpu().numpy()


def split_preprocess(preprocess):
    """open_clip's eval transform ends in ToTensor + Normalize. Split it: PIL ops per image (in
    DataLoader workers, shipped as uint8, 4x smaller) and the tensor ops once per batch, with
    results identical to the whole transform. -> (per_image, per_batch)."""
    from torchvision.transforms import Compose, Normalize
    ts = getattr(preprocess, "transforms", [])
    if len(ts) >= 2 and isinstance(ts[-1], Normalize) and type(ts[-2]).__name__ in ("ToTensor", "MaybeToTensor"):
        return _PilToUint8(Compose(ts[:-2])), _BatchNormalize(ts[-1].mean, ts[-1].std)
    return preprocess, None


class ClipModel:
    """A CLIP model ready to encode, with its identity (`fingerprint`) and its cache."""

    def __init__(self, module, *, name, model_cfg, preprocess_cfg, tokenizer, weights_digest,
                 device, precision, cache: EmbeddingCache, source: str):
        self.module = module.to(device).eval()
        self.name, self.model_cfg, self.source = name, model_cfg, source
        self.preprocess_cfg = preprocess_cfg
        self.preprocess = image_transform_v2(PreprocessCfg(**preprocess_cfg), is_train=False)
        self.preprocess_image, normalize_batch = split_preprocess(self.preprocess)
        self.image_tower = ImageTower(self.module, normalize_batch, device, precision)
        self.tokenizer = tokenizer
        self.device, self.precision, self.cache = device, precision, cache
        self.max_image_pixels = MAX_PIXELS
        identity = {"model_cfg": model_cfg, "preprocess": preprocess_cfg, "weights": weights_digest,
                    "tokenizer": [type(tokenizer).__name__, self.context_length], "precision": precision}
        self.fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True, default=list).encode()).hexdigest()
        with torch.inference_mode():
            self.embed_dim = int(self.module.encode_text(self.tokenizer(["a"]).to(device)).shape[-1])
        cache.register_model(self.fingerprint, name, self.embed_dim)

    def __repr__(self):
        return (f"ClipModel({self.name!r}, image_size={self.image_size}, embed_dim={self.embed_dim}, "
                f"device={self.device.type}, precision={self.precision}, fingerprint={self.fingerprint[:12]})")

    @property
    def image_size(self) -> int:
        size = self.preprocess_cfg["size"]
        return size if isinstance(size, int) else size[0]

    @property
    def context_length(self) -> int:
        return int(getattr(self.tokenizer, "context_length", None) or self.module.context_length)

    @property
    def quick_gelu(self) -> bool:
        return any(isinstance(m, open_clip.transformer.QuickGELU) for m in self.module.modules())

    @property
    def logit_scale(self) -> float:
        """The learned temperature that turns cosine similarities into logits (100 for OpenAI's CLIPs)."""
        scale = getattr(self.module, "logit_scale", None)
        return float(scale.detach().exp().clamp(max=100)) if scale is not None else 100.0

    @property
    def default_batch_size(self) -> int:
        return 256 if self.device.type == "cuda" else 32

    def embed_image_tensors(self, pixels: torch.Tensor) -> np.ndarray:
        """Forward preprocessed pixels (B, 3, H, W) -> normalized float32 (B, D). No cache.
        Takes the output of `preprocess`, or uint8 batches of `preprocess_image`."""
        return self.image_tower(pixels)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Forward a batch of strings -> normalized float32 (B, D). No cache."""
        tokens = self.tokenizer(texts).to(self.device)
        with torch.inference_mode(), autocast(self.device, self.precision):
            feats = self.module.encode_text(tokens)
        return F.normalize(feats.float(), dim=-1).cpu().numpy()

    def count_truncated(self, texts: list[str]) -> int:
        encode = getattr(self.tokenizer, "encode", None)
        if encode is None:
            return 0
        return sum(len(encode(t)) > self.context_length - 2 for t in texts)  # room for SOT and EOT

    def encode_images(self, images, batch_size=None, cache=True, strict=False, progress=True,
                      num_workers=None, return_failures=False):
        """Images (paths, PIL images, arrays, or a lab dataset) -> (N, D) float32, L2-normalized,
        in input order. Bad items are skipped (NaN rows) and reported; strict=True raises."""
        return encoding.encode_images(self, images, batch_size, cache, strict, progress, num_workers, return_failures)

    def encode_texts(self, texts, batch_size=None, cache=True, strict=False, progress=True, return_failures=False):
        """Strings -> (N, D) float32, L2-normalized. Over-long texts are truncated with a warning."""
        return encoding.encode_texts(self, texts, batch_size, cache, strict, progress, return_failures)


# -- building -----------------------------------------------------------------------------------

def _build(model_cfg: dict) -> torch.nn.Module:
    cfg = copy.deepcopy(model_cfg)
    custom = cfg.pop("custom_text", False) or "hf_model_name" in cfg.get("text_cfg", {})
    if "hf_model_name" in cfg.get("text_cfg", {}):
        cfg["text_cfg"]["hf_model_pretrained"] = False
    if "timm_model_name" in cfg.get("vision_cfg", {}):
        cfg["vision_cfg"]["timm_model_pretrained"] = False
    cls = open_clip.CoCa if "multimodal_cfg" in cfg else open_clip.CustomTextCLIP if custom else open_clip.CLIP
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
        ref = open_clip.get_model_config(arch)
        if ref["embed_dim"] == cfg["embed_dim"] and all(
                ref[t].get(k) == v for t in ("vision_cfg", "text_cfg") for k, v in cfg[t].items()):
            return arch
    return None


def _tokenizer(arch: str | None, model_cfg: dict):
    ctx = model_cfg.get("text_cfg", {}).get("context_length", 77)
    if arch and open_clip.get_model_config(arch) is not None:
        return open_clip.get_tokenizer(arch, context_length=ctx)
    return open_clip.SimpleTokenizer(context_length=ctx)


def _default_preprocess(module, overrides: dict | None = None) -> dict:
    cfg = asdict(PreprocessCfg())
    cfg.update({k: v for k, v in (overrides or {}).items() if k in cfg})
    cfg["size"] = module.visual.image_size
    if isinstance(cfg["size"], (tuple, list)):
        cfg["size"] = cfg["size"][0] if cfg["size"][0] == cfg["size"][1] else list(cfg["size"])
    return cfg


def _from_file(path, *, arch, quick_gelu, trust, cache, name=None, preprocess=None):
    state, meta = read_checkpoint(path, trust)
    if meta["source"] == LAB_FORMAT:
        model_cfg, arch = meta["model_cfg"], meta.get("arch")
        preprocess = meta.get("preprocess_cfg", preprocess)
    elif arch:
        model_cfg = open_clip.get_model_config(arch)
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
    module = _build(model_cfg)
    _load_state(module, state, os.fspath(path), allow_extra=meta["source"] == "torchscript")
    display = name or f"{arch or 'custom'} ({os.path.basename(path)})"
    return dict(module=module, name=display, model_cfg=model_cfg,
                preprocess_cfg=_default_preprocess(module, preprocess), tokenizer=_tokenizer(arch, model_cfg),
                weights_digest=cache.file_digest(path), source=os.path.abspath(path))


def _from_tag(arch, tag, *, quick_gelu, trust, cache, cache_dir):
    tag_cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not tag_cfg:
        tags = open_clip.list_pretrained_tags_by_model(arch)
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
            path = open_clip.download_pretrained(tag_cfg, cache_dir=cache_dir)
        except Exception as e:
            reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            qg = ", quick_gelu=True" if tag_cfg.get("quick_gelu") else ""
            raise ModelNotAvailable(
                f"cannot load {arch} with pretrained={tag!r}: its weights are not in the local cache and "
                f"the download from {where} failed ({reason}). If this machine is offline, fetch the file "
                f"elsewhere and pass it: lab.load_model('{arch}', pretrained='/path/to/file'{qg}).") from None
    if quick_gelu is None:
        quick_gelu = bool(tag_cfg.get("quick_gelu") or open_clip.get_model_config(arch).get("quick_gelu"))
    return _from_file(path, arch=arch, quick_gelu=quick_gelu, trust=trust, cache=cache,
                      name=f"{arch}:{tag}", preprocess=tag_cfg)


def _from_schema(name, *, cache_dir):
    try:
        module = open_clip.create_model(name, cache_dir=cache_dir, require_pretrained=True)
        tokenizer = open_clip.get_tokenizer(name, cache_dir=cache_dir)
    except Exception as e:
        raise ModelNotAvailable(
            f"cannot load {name}: {str(e).strip().splitlines()[0][:200]}. Offline? Download the repo and use "
            "'local-dir:/path/to/folder', or pass a checkpoint file.") from None
    pcfg = open_clip.get_model_preprocess_cfg(module)
    return dict(module=module, name=name, model_cfg={"schema": name}, preprocess_cfg=_default_preprocess(module, pcfg),
                tokenizer=tokenizer, weights_digest=tensor_digest(module.state_dict()), source=name)


def _random(arch, *, quick_gelu, seed=0):
    model_cfg = copy.deepcopy(open_clip.get_model_config(arch))
    if quick_gelu is not None:
        model_cfg["quick_gelu"] = bool(quick_gelu)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = _build(model_cfg)
    return dict(module=module, name=f"{arch}:random", model_cfg=model_cfg, preprocess_cfg=_default_preprocess(module),
                tokenizer=_tokenizer(arch, model_cfg), weights_digest=tensor_digest(module.state_dict()),
                source=f"random init, seed {seed}")


def load_model(name_or_path, pretrained: str | None = None, device=None, precision: str | None = None, *,
               cache: EmbeddingCache | str | os.PathLike | None = None, cache_dir: str | None = None,
               trust_checkpoint: bool = False, quick_gelu: bool | None = None) -> ClipModel:
    """Load a CLIP model by name, tag, hub id or file (see module docstring).

    pretrained: an open_clip tag ("openai", "laion2b_s34b_b79k"), a checkpoint path, or "random"
        (seeded random weights, for tests and benchmarks).
    device / precision: default CUDA > MPS > CPU; fp16 autocast on CUDA, fp32 elsewhere.
    cache: an EmbeddingCache or its directory (default $LAB_CACHE_DIR or the per-user cache).
    cache_dir: where open_clip downloads weights (default: open_clip's own).
    trust_checkpoint: allow full unpickling of legacy checkpoints (runs code from the file).
    quick_gelu: override the activation. Default: QuickGELU for OpenAI weights, as they were
        trained: OpenAI names and tags, TorchScript release files, and a bare OpenAI-layout state
        dict passed without an architecture (as OpenAI's build_model does). open_clip checkpoints
        trained with GELU share that layout: load them as load_model(arch, pretrained=file).
    """
    cache = cache if isinstance(cache, EmbeddingCache) else EmbeddingCache(cache)
    device = pick_device(device)
    precision = pick_precision(precision, device)
    name = os.fspath(name_or_path)
    builtins = builtin_models()
    if name in builtins and not pretrained:  # lab-vit-tiny with pretrained="random" is the bare architecture
        built = _from_file(builtins[name], arch=None, quick_gelu=quick_gelu, trust=False, cache=cache, name=name)
    elif os.path.isfile(name):
        built = _from_file(name, arch=None, quick_gelu=quick_gelu, trust=trust_checkpoint, cache=cache)
    elif name.startswith(("hf-hub:", "local-dir:")):
        built = _from_schema(name, cache_dir=cache_dir)
    else:
        arch, tag = split_name(name, pretrained)
        if open_clip.get_model_config(arch) is None:
            hint = " (no such file either)" if os.sep in name or name.endswith((".pt", ".pth", ".bin")) else ""
            raise ModelNotAvailable(f"unknown model {name!r}{hint}. lab.list_models() lists the names; "
                                    "a local checkpoint file can be passed by path.")
        if tag is None:
            raise ModelNotAvailable(
                f"{name} is an architecture; say which weights: pretrained= one of "
                f"{open_clip.list_pretrained_tags_by_model(arch) or '(no published tags)'}, a checkpoint file, "
                "or 'random'.")
        if os.path.isfile(tag):
            qg = True if quick_gelu is None and name in OPENAI_MODELS else quick_gelu
            built = _from_file(tag, arch=arch, quick_gelu=qg, trust=trust_checkpoint, cache=cache)
        elif tag == "random":
            built = _random(arch, quick_gelu=quick_gelu)
        else:
            built = _from_tag(arch, tag, quick_gelu=quick_gelu, trust=trust_checkpoint, cache=cache,
                              cache_dir=cache_dir)
    return ClipModel(device=device, precision=precision, cache=cache, **built)
