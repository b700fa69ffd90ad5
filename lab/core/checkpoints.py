"""Read CLIP checkpoint files without running code from them, and infer their architecture.

Formats read by `read_checkpoint(path)`:
- TorchScript archives (OpenAI's original release files, what `clip.load` reads). Only the
  archive's `data.pkl` is unpickled, with an allow-list that rebuilds tensors and nothing else;
  the archive's TorchScript code is never compiled or run.
- `torch.save` files: plain state dicts (OpenAI or open_clip key layout), open_clip training
  checkpoints ({"state_dict": ...}) and lab's own checkpoints ({"format": "clip-lab", ...}),
  all through `torch.load(weights_only=True)`.
- `.safetensors` files.
A legacy pickle that needs more than tensors and containers is refused with `UnsafeCheckpoint`
unless the caller passes `trust=True`.
"""
from __future__ import annotations

import collections
import os
import pickle
import zipfile

import torch

from ..errors import ModelNotAvailable, UnsafeCheckpoint

__all__ = ["LAB_FORMAT", "read_torchscript_tensors", "read_checkpoint", "infer_openai_config"]

LAB_FORMAT = "clip-lab"

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _ScriptObject:
    """Stand-in for a TorchScript class instance: keeps its attribute dict, runs nothing."""

    def __setstate__(self, state):
        self.state = state


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    return torch.as_strided(storage, size, stride, offset)


class _TensorOnlyUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, path: str):
        import io
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.path = archive, prefix, path
        self.storages: dict[str, torch.Tensor] = {}

    def find_class(self, module, name):
        if module.startswith("__torch__"):
            return _ScriptObject
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, requires_grad, backward_hooks: data
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise UnsafeCheckpoint(
            f"{self.path}: the TorchScript archive references {module}.{name}, which is not a tensor; "
            "lab reads only tensors from TorchScript archives. If you trust the file, load it with "
            "torch.jit.load yourself and pass its state_dict saved by torch.save.")

    def persistent_load(self, pid):
        _, dtype, key, _location, _numel = pid
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}/data/{key}")
            self.storages[key] = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        return self.storages[key]


def _is_torchscript_archive(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist())


def _flatten(obj, prefix: str, out: dict):
    for name, value in obj.state.items():
        if isinstance(value, torch.Tensor):
            out[prefix + name] = value
        elif isinstance(value, _ScriptObject):
            _flatten(value, f"{prefix}{name}.", out)


def read_torchscript_tensors(path: str) -> dict[str, torch.Tensor]:
    """State dict of a TorchScript archive, read without compiling or running its code."""
    with zipfile.ZipFile(path) as zf:
        pkl = next(n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1)
        prefix = pkl.split("/")[0]
        root = _TensorOnlyUnpickler(zf.read(pkl), zf, prefix, path).load()
    out: dict[str, torch.Tensor] = {}
    _flatten(root, "", out)
    return out


def _is_pickle_or_zip(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(2)
    return zipfile.is_zipfile(path) or head[:1] == b"\x80"  # pickle PROTO opcode


def _trusted_load(path: str):
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ModelNotAvailable(f"{path} is not a readable checkpoint ({type(e).__name__}: {e})") from None


def read_checkpoint(path: str, trust: bool = False) -> tuple[dict, dict]:
    """Read a checkpoint file -> (state_dict, metadata). Metadata records the source format and,
    for lab checkpoints, the model and preprocessing configs."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelNotAvailable(f"checkpoint file not found: {path}")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file
            return load_file(path), {"source": "safetensors"}
        if _is_torchscript_archive(path):
            return read_torchscript_tensors(path), {"source": "torchscript"}
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except UnsafeCheckpoint:
        raise
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()[0][:200]
        if not _is_pickle_or_zip(path):  # e.g. an image renamed .pt: not unsafe, just not a checkpoint
            raise ModelNotAvailable(f"{path} is not a checkpoint (neither a torch.save zip nor a pickle)") from None
        if not trust:
            raise UnsafeCheckpoint(
                f"{path} is a pickle that needs more than tensors to load ({reason}). Loading it "
                "would run code from the file. If you trust where it came from, pass "
                "trust_checkpoint=True (CLI: --trust-checkpoint).") from None
        payload = _trusted_load(path)
    except Exception as e:
        raise ModelNotAvailable(f"{path} is not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(payload, dict):
        raise ModelNotAvailable(f"{path} holds a {type(payload).__name__}, not a state dict")
    meta = {"source": "state_dict"}
    if payload.get("format") == LAB_FORMAT:
        meta = {k: v for k, v in payload.items() if k != "state_dict"}
        meta["source"] = LAB_FORMAT
    if isinstance(payload.get("state_dict"), dict):
        payload = payload["state_dict"]
    state = {k.removeprefix("module."): v for k, v in payload.items() if isinstance(v, torch.Tensor)}
    return state, meta


def _is_openai_layout(state: dict) -> bool:
    return "text_projection" in state and "token_embedding.weight" in state and (
        "visual.proj" in state or "visual.attnpool.positional_embedding" in state)


def infer_openai_config(state: dict) -> dict:
    """open_clip model config of an OpenAI-layout state dict, read off its tensor shapes
    (the rules of OpenAI's `build_model`)."""
    if not _is_openai_layout(state):
        raise ModelNotAvailable(
            "cannot infer the architecture: the state dict is not in OpenAI/open_clip CLIP layout "
            "(no visual.proj / visual.attnpool and text_projection keys). Name the architecture: "
            "lab.load_model('<open_clip arch>', pretrained='<file>').")
    if "visual.proj" in state:
        width = state["visual.conv1.weight"].shape[0]
        layers = len({k.split(".")[3] for k in state if k.startswith("visual.transformer.resblocks.")})
        patch = state["visual.conv1.weight"].shape[-1]
        grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        vision = {"image_size": patch * grid, "layers": layers, "width": width, "patch_size": patch}
    else:
        counts = [len({k.split(".")[2] for k in state if k.startswith(f"visual.layer{b}.")}) for b in (1, 2, 3, 4)]
        out_width = round((state["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
        vision = {"image_size": out_width * 32, "layers": counts,
                  "width": state["visual.layer1.0.conv1.weight"].shape[0], "patch_size": None}
    text_width = state["ln_final.weight"].shape[0]
    text = {
        "context_length": state["positional_embedding"].shape[0],
        "vocab_size": state["token_embedding.weight"].shape[0],
        "width": text_width,
        "heads": max(1, text_width // 64),
        "layers": len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")}),
    }
    return {"embed_dim": state["text_projection"].shape[1], "vision_cfg": vision, "text_cfg": text}
