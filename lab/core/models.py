"""Load any CLIP (open_clip name + tag, OpenAI name, hub id, local checkpoint, lab built-in) as a
`ClipModel` that encodes images and texts to L2-normalized float32 embeddings through the cache.

    model = lab.load_model("ViT-B/32")                       # OpenAI weights (downloads once)
    model = lab.load_model("ViT-B-32", pretrained="laion2b_s34b_b79k")
    model = lab.load_model("/path/to/ViT-B-32.pt")           # OpenAI release file, arch inferred
    model = lab.load_model("lab-vit-tiny")                   # built in, offline
    model = lab.load_model("/models/siglip-base-patch16-224") # a transformers checkpoint folder
    model = lab.load_model("hf-hub:google/siglip-base-patch16-224")  # the same from the hub (or its cache)
    emb = model.encode_images(paths)                          # (N, D) float32
    model.link, model.logit_scale, model.logit_bias          # how its scores become probabilities

A model loaded from a file before is known by its identity (remembered in the cache, keyed by the
file's path and content hash): it is built on first use, so a run whose embeddings are all cached never
imports torch or open_clip.
"""
from __future__ import annotations

import functools
import glob
import hashlib
import json
import os
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

from ..errors import BadInput, LabError, ModelNotAvailable
from . import encoding
from .cache import EmbeddingCache
from .hub import HUB_PREFIX, folder_files_digest, folder_format, require_hub_files, resolve_folder, transformers_type, weights_file
from .images import MAX_PIXELS
from .registry import CONFIG_DIR, OPENAI_MODELS, builtin_models, open_clip, split_name
from .tokens import tokenize

__all__ = ["PRECISIONS", "pick_device", "device_name", "fingerprint", "ClipModel", "load_model"]

PRECISIONS = ("fp32", "fp16", "bf16")


def pick_device(device=None):
    """CUDA, then MPS, then CPU, unless named -> torch.device."""
    import torch
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _no_gpu_visible() -> bool:
    """Linux without an NVIDIA (/dev/nvidia*), ROCm (/dev/kfd) or WSL (/dev/dxg) device node: torch
    could see no GPU, so the answer needs no torch import."""
    return sys.platform.startswith("linux") and not (
        glob.glob("/dev/nvidia*") or os.path.exists("/dev/kfd") or os.path.exists("/dev/dxg"))


def device_name(device=None) -> str:
    """The device to run on as a string ("cpu", "cuda", "cuda:1", "mps"): the one named, else the best."""
    if device is not None:
        return str(device)
    return "cpu" if _no_gpu_visible() else str(pick_device())


def _pick_precision(precision: str | None, device: str) -> str:
    """fp32 on CPU and MPS, fp16 autocast on CUDA, unless named."""
    kind = device.split(":")[0]
    if precision is None:
        return "fp16" if kind == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise BadInput(f"precision={precision!r} is not one of {sorted(PRECISIONS)}")
    if precision == "fp16" and kind == "cpu":
        raise BadInput("precision='fp16' needs a GPU; on the CPU use 'fp32' or 'bf16'")
    return precision


def fingerprint(identity: dict) -> str:
    """What the embeddings depend on: architecture, preprocessing, weights, tokenizer, precision."""
    keep = {"model_cfg": identity["model_cfg"], "preprocess": identity["preprocess_cfg"],
            "weights": identity["weights"], "tokenizer": identity["tokenizer"], "precision": identity["precision"]}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=list).encode()).hexdigest()


def _prepare(parts: dict, device: str, precision: str) -> dict:
    """Built parts -> what a forward pass needs: the module on its device, tokenizer, transforms."""
    import torch
    from ._towers import ImageTower, eval_transform, half_copy, split_preprocess
    dev = torch.device(device)
    module = parts["module"].to(dev).eval()
    # encoding on CUDA in fp16 runs an fp16 copy (faster than autocast); `module` stays as loaded for gradients
    inference = half_copy(module) if precision == "fp16" and dev.type == "cuda" else module
    preprocess = eval_transform(parts["preprocess_cfg"])
    per_image, per_batch = split_preprocess(preprocess)
    return dict(module=module, inference=inference, tokenizer=parts["tokenizer"], preprocess=preprocess,
                preprocess_image=per_image, image_tower=ImageTower(inference, per_batch, dev, precision), device=dev)


def _identity(parts: dict, runtime: dict, precision: str) -> dict:
    """Everything about a model that needs no forward pass later: names, configs, sizes, and how its
    scores are made: the logit scale and bias as the checkpoint has them (unclamped) and the link."""
    from ._towers import encode_text_tokens
    module, tokenizer = runtime["module"], runtime["tokenizer"]
    context = int(getattr(tokenizer, "context_length", None) or module.context_length)
    embed_dim = encode_text_tokens(runtime["inference"], tokenizer(["a"]), runtime["device"], precision).shape[-1]
    scale, bias = getattr(module, "logit_scale", None), getattr(module, "logit_bias", None)
    return {"name": parts["name"], "source": parts["source"], "model_cfg": parts["model_cfg"],
            "preprocess_cfg": parts["preprocess_cfg"], "weights": parts["weights_digest"],
            "tokenizer": [type(tokenizer).__name__, context], "precision": precision,
            "embed_dim": int(embed_dim), "logit_scale": float(scale.detach().exp()) if scale is not None else 100.0,
            "logit_bias": float(bias.detach()) if bias is not None else 0.0,
            "link": "sigmoid" if bias is not None else "softmax"}


class ClipModel:
    """A CLIP model ready to encode, with its identity (`fingerprint`) and its cache. The torch
    module, tokenizer and transforms are built on first use when only the identity is known."""

    def __init__(self, identity: dict, build, *, device: str, cache: EmbeddingCache, runtime: dict | None = None):
        self.identity, self._build = identity, build
        self.name, self.source = identity["name"], identity["source"]
        self.model_cfg, self.preprocess_cfg = identity["model_cfg"], identity["preprocess_cfg"]
        self.precision, self.embed_dim = identity["precision"], identity["embed_dim"]
        self.device_name, self.cache = device, cache
        self.max_image_pixels = MAX_PIXELS
        self.fingerprint = fingerprint(identity)
        if runtime is not None:
            self.__dict__["_runtime"] = runtime
        cache.register_model(self.fingerprint, self.name, self.embed_dim)

    @classmethod
    def build_now(cls, build, *, device: str, precision: str, cache: EmbeddingCache) -> "ClipModel":
        parts = build()
        runtime = _prepare(parts, device, precision)
        return cls(_identity(parts, runtime, precision), build, device=device, cache=cache, runtime=runtime)

    @functools.cached_property
    def _runtime(self) -> dict:
        parts = self._build()
        runtime = _prepare(parts, self.device_name, self.precision)
        if fingerprint(_identity(parts, runtime, self.precision)) != self.fingerprint:
            raise LabError(f"{self.name} built from {self.source} is not the model remembered under that file's "
                           f"hash in {self.cache.path}; clear the cache (python -m lab cache clear) and load again")
        return runtime

    def __repr__(self):
        return (f"ClipModel({self.name!r}, image_size={self.image_size}, embed_dim={self.embed_dim}, "
                f"device={self.device_name}, precision={self.precision}, fingerprint={self.fingerprint[:12]})")

    @property
    def built(self) -> bool:
        """Whether the torch module exists yet (a fully cached run never builds it)."""
        return "_runtime" in self.__dict__

    module = property(lambda self: self._runtime["module"], doc="The open_clip torch module (built on first use).")
    tokenizer = property(lambda self: self._runtime["tokenizer"])
    preprocess = property(lambda self: self._runtime["preprocess"], doc="PIL image -> normalized (3, H, W) tensor.")
    preprocess_image = property(lambda self: self._runtime["preprocess_image"])
    image_tower = property(lambda self: self._runtime["image_tower"])
    device = property(lambda self: self._runtime["device"] if self.built else pick_device(self.device_name),
                      doc="The torch.device (imports torch; `device_name` does not).")

    @property
    def image_size(self) -> int:
        size = self.preprocess_cfg["size"]
        return size if isinstance(size, int) else size[0]

    @property
    def context_length(self) -> int:
        return self.identity["tokenizer"][1]

    @property
    def quick_gelu(self) -> bool:
        return any(isinstance(m, open_clip().transformer.QuickGELU) for m in self.module.modules())

    @property
    def logit_scale(self) -> float:
        """The learned temperature that turns cosine similarities into logits (100 for OpenAI's CLIPs),
        as the checkpoint has it (SigLIP's is about 110-120)."""
        return self.identity["logit_scale"]

    @property
    def logit_bias(self) -> float:
        """The learned bias added to every logit (SigLIP's, about -10 to -17; 0 for CLIP)."""
        return self.identity["logit_bias"]

    @property
    def link(self) -> str:
        """"softmax" (one distribution over the classes, as CLIP was trained) or "sigmoid" (an
        independent probability per class, as SigLIP was trained: they need not sum to 1)."""
        return self.identity["link"]

    @property
    def default_batch_size(self) -> int:
        return 256 if self.device_name.startswith("cuda") else 32

    def randomized(self, seed: int = 0) -> "ClipModel":
        """The same architecture, tokenizer and preprocessing with every weight redrawn, seeded, from a
        normal with that tensor's own mean and spread: the model-randomization sanity check's twin for a
        model with no random-init name (a checkpoint file or folder). It has its own fingerprint."""
        import copy

        import torch
        from ._build import tensor_digest
        module = copy.deepcopy(self.module)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in module.parameters():
                if p.is_floating_point() and p.numel() > 1:
                    p.copy_(torch.randn(p.shape, generator=g).to(p.device) * p.float().std() + p.float().mean())
        parts = dict(module=module, name=f"{self.name} (random weights)", model_cfg=self.model_cfg,
                     preprocess_cfg=self.preprocess_cfg, tokenizer=self.tokenizer,
                     weights_digest=tensor_digest(module.state_dict()), source=f"{self.source}, weights redrawn (seed {seed})")
        return ClipModel.build_now(lambda: parts, device=self.device_name, precision=self.precision, cache=self.cache)

    def embed_image_tensors(self, pixels) -> np.ndarray:
        """Forward preprocessed pixels (B, 3, H, W) -> normalized float32 (B, D). No cache.
        Takes the output of `preprocess`, or uint8 batches of `preprocess_image`."""
        return self.image_tower(pixels)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Forward a batch of strings -> normalized float32 (B, D). No cache."""
        return self.launch_texts(tokenize(self.tokenizer, texts, self.context_length)[0]).numpy()

    def launch_texts(self, tokens):
        """Queue the forward pass of token ids (B, L) (asynchronous on CUDA) -> a result whose
        `.numpy()` is the normalized float32 (B, D)."""
        from ._towers import launch_text
        return launch_text(self._runtime["inference"], tokens, self.device, self.precision)

    def encode_images(self, images, batch_size=None, cache=True, strict=False, progress=True,
                      num_workers=None, return_failures=False, decode="auto"):
        """Images (paths, PIL images, arrays, or a lab dataset) -> (N, D) float32, L2-normalized,
        in input order. Bad items are skipped (NaN rows) and reported; strict=True raises.
        decode: "cpu" (PIL in DataLoader workers), "gpu" (JPEG files decoded and resized on the model's
        device, the rest with PIL), "auto" (gpu on a CUDA model, else cpu)."""
        return encoding.encode_images(self, images, batch_size, cache, strict, progress, num_workers, return_failures,
                                      decode)

    def encode_texts(self, texts, batch_size=None, cache=True, strict=False, progress=True, return_failures=False):
        """Strings -> (N, D) float32, L2-normalized. Over-long texts are truncated with a warning."""
        return encoding.encode_texts(self, texts, batch_size, cache, strict, progress, return_failures)


def _builder(how: str, *args, **kwargs):
    """A () -> parts callable; the torch side (lab.core._build) is imported only when it is called."""
    def build():
        if how == "from_transformers":
            from . import _hf
            return _hf.from_transformers(*args, **kwargs)
        from . import _build
        return getattr(_build, how)(*args, **kwargs)
    return build


@functools.cache
def _loader_version() -> str:
    """Changes whenever the code or packages that turn a file into a model change."""
    h = hashlib.sha256()
    for f in ("_build.py", "_hf.py", "hub.py", "models.py", "checkpoints.py", "registry.py"):
        h.update((Path(__file__).parent / f).read_bytes())
    for p in ("open_clip_torch", "torch", "transformers"):
        h.update(metadata.version(p).encode())
    return h.hexdigest()


def _file_request(name: str, pretrained: str | None, quick_gelu, trust: bool) -> dict | None:
    """from_file's arguments when the model is a file (built-in, checkpoint, or an architecture
    with a checkpoint file as `pretrained`), else None."""
    builtins = builtin_models()
    if name in builtins and not pretrained:  # lab-vit-tiny with pretrained="random" is the bare architecture
        return dict(path=str(builtins[name]), arch=None, quick_gelu=quick_gelu, trust=False, name=name)
    if os.path.isfile(name):
        return dict(path=os.path.abspath(name), arch=None, quick_gelu=quick_gelu, trust=trust)
    if name.startswith("local-dir:"):
        return None
    arch, tag = split_name(name, pretrained)
    if tag is not None and os.path.isfile(tag):
        qg = True if quick_gelu is None and name in OPENAI_MODELS else quick_gelu
        return dict(path=os.path.abspath(tag), arch=arch, quick_gelu=qg, trust=trust)
    return None


def _model_folder(name: str, pretrained: str | None, cache_dir: str | None) -> Path | None:
    """The folder of a model given as "hf-hub:org/repo" (its complete cached snapshot, else downloaded) or
    as a folder holding open_clip_config.json or config.json; None for every other name (a folder without
    either, e.g. one that happens to share a model's name, is not a model)."""
    if name.startswith(HUB_PREFIX):
        folder = resolve_folder(name, cache_dir)
    elif os.path.isdir(name) and folder_format(name) is not None:
        folder = Path(name)
    else:
        return None
    if pretrained:
        raise ModelNotAvailable(f"{name} is a model folder with its own weights: pretrained={pretrained!r} does not "
                                "apply to it; leave pretrained out")
    return folder


def _arch_config(arch: str | None):
    """The config an architecture name resolves to, for the identity key: from open_clip when it is
    imported already (configs may have been added to it), else from the JSON file it would read."""
    if arch is None:
        return None
    if "open_clip" in sys.modules:
        return open_clip().get_model_config(arch)
    import importlib.util
    folders = [CONFIG_DIR,
               Path(importlib.util.find_spec("open_clip").origin).parent / "model_configs"]
    for folder in folders:
        if (folder / f"{arch}.json").is_file():
            return json.loads((folder / f"{arch}.json").read_text())
    return None


def _from_name(name: str, pretrained: str | None, quick_gelu, trust: bool, cache, cache_dir):
    """The builder of a model that is not a file: an open_clip schema, a pretrained tag, a random init."""
    if name.startswith("local-dir:"):
        return _builder("from_schema", name, cache_dir=cache_dir)
    arch, tag = split_name(name, pretrained)
    if tag is not None and _arch_config(arch) is not None:  # before open_clip's import: offline, fail in a moment
        require_hub_files(name, _arch_config(arch))  # the default hub cache: where open_clip's tokenizer looks
    oc = open_clip()
    if oc.get_model_config(arch) is None:
        hint = " (no such file either)" if os.sep in name or name.endswith((".pt", ".pth", ".bin")) else ""
        raise ModelNotAvailable(f"unknown model {name!r}{hint}. lab.list_models() lists the names; "
                                "a local checkpoint file can be passed by path.")
    if tag is None:
        raise ModelNotAvailable(
            f"{name} is an architecture; say which weights: pretrained= one of "
            f"{oc.list_pretrained_tags_by_model(arch) or '(no published tags)'}, a checkpoint file, "
            "or 'random'.")
    if tag == "random":
        return _builder("random_init", arch, quick_gelu=quick_gelu)
    return _builder("from_tag", arch, tag, quick_gelu=quick_gelu, trust=trust, cache=cache, cache_dir=cache_dir)


def load_model(name_or_path, pretrained: str | None = None, device=None, precision: str | None = None, *,
               cache: EmbeddingCache | str | os.PathLike | None = None, cache_dir: str | None = None,
               trust_checkpoint: bool = False, quick_gelu: bool | None = None) -> ClipModel:
    """Load a CLIP model by name, tag, hub id or file (see module docstring).

    pretrained: an open_clip tag ("openai", "laion2b_s34b_b79k"), a checkpoint path, or "random"
        (seeded random weights, for tests and benchmarks).
    device / precision: default CUDA > MPS > CPU; fp16 autocast on CUDA, fp32 elsewhere.
    cache: an EmbeddingCache or its directory (default $LAB_CACHE_DIR or the per-user cache).
    cache_dir: where open_clip and the Hugging Face hub download weights (default: their own caches).
    trust_checkpoint: allow full unpickling of legacy checkpoints (runs code from the file).
    quick_gelu: override the activation. Default: QuickGELU for OpenAI weights, as they were
        trained: OpenAI names and tags, TorchScript release files, and a bare OpenAI-layout state
        dict passed without an architecture (as OpenAI's build_model does). open_clip checkpoints
        trained with GELU share that layout: load them as load_model(arch, pretrained=file).
    """
    cache = cache if isinstance(cache, EmbeddingCache) else EmbeddingCache(cache)
    device = device_name(device)
    precision = _pick_precision(precision, device)
    name = os.fspath(name_or_path)
    folder = _model_folder(name, pretrained, cache_dir)
    if folder is not None and folder_format(folder) == "transformers":
        transformers_type(folder)  # a model type the lab does not read is refused before anything is hashed
        shown = name if name.startswith(HUB_PREFIX) else folder.resolve().name  # a folder is named as a file is
        request = dict(path=str(folder.resolve()), arch=None, quick_gelu=None, trust=False, name=shown, folder=True)
    else:
        request = None if folder is not None else _file_request(name, pretrained, quick_gelu, trust_checkpoint)
    if request is None:
        build = _builder("from_schema", f"local-dir:{folder}", cache_dir=cache_dir, display=name) \
            if folder is not None else _from_name(name, pretrained, quick_gelu, trust_checkpoint, cache, cache_dir)
        model = ClipModel.build_now(build, device=device, precision=precision, cache=cache)
    else:
        path = request.pop("path")
        if request.pop("folder", False):
            build = _builder("from_transformers", path, cache=cache, name=request["name"])
            digest = [cache.file_digest(str(weights_file(path))), folder_files_digest(path)]
        else:
            build = _builder("from_file", path, **request, cache=cache)
            digest = cache.file_digest(path)
        key = hashlib.sha256(json.dumps([path, digest, request, _arch_config(request["arch"]),
                                         precision, _loader_version()], sort_keys=True).encode()).hexdigest()
        known = cache.model_identity(key)
        if known is not None:
            model = ClipModel(known, build, device=device, cache=cache)
        else:
            model = ClipModel.build_now(build, device=device, precision=precision, cache=cache)
            cache.put_model_identity(key, model.fingerprint, model.identity)
    # how to load the same model elsewhere (lab.dist's workers): everything but device and cache
    as_file = lambda p: os.path.abspath(p) if p and os.path.isfile(p) else p  # noqa: E731  any working directory
    model.load_args = dict(name_or_path=as_file(name), pretrained=as_file(pretrained), precision=precision,
                           cache_dir=cache_dir, trust_checkpoint=trust_checkpoint, quick_gelu=quick_gelu)
    return model
