"""The torch side of encoding: preprocessing split into per-image PIL ops and per-batch tensor
ops, and the image tower a forward pass (in this process or a DataLoader worker) runs.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from ..threads import fit_torch

DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def autocast(device: torch.device, precision: str):
    dtype = DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


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


def split_preprocess(preprocess):
    """open_clip's eval transform ends in ToTensor + Normalize. Split it: PIL ops per image (in
    DataLoader workers, shipped as uint8, 4x smaller) and the tensor ops once per batch, with
    results identical to the whole transform. -> (per_image, per_batch)."""
    from torchvision.transforms import Compose, Normalize
    ts = getattr(preprocess, "transforms", [])
    if len(ts) >= 2 and isinstance(ts[-1], Normalize) and type(ts[-2]).__name__ in ("ToTensor", "MaybeToTensor"):
        return _PilToUint8(Compose(ts[:-2])), _BatchNormalize(ts[-1].mean, ts[-1].std)
    return preprocess, None


class ImageTower:
    """Preprocessed pixels (B, 3, H, W), float or uint8 -> L2-normalized float32 (B, D).
    Picklable, so CPU DataLoader workers can run it on their own batches."""

    def __init__(self, module, normalize_batch, device: torch.device, precision: str):
        self.module, self.normalize_batch, self.device, self.precision = module, normalize_batch, device, precision

    def __call__(self, pixels: torch.Tensor) -> np.ndarray:
        fit_torch()
        pixels = pixels.to(self.device, non_blocking=True)
        if pixels.dtype == torch.uint8:
            pixels = self.normalize_batch(pixels)
        with torch.inference_mode(), autocast(self.device, self.precision):
            feats = self.module.encode_image(pixels)
        return F.normalize(feats.float(), dim=-1).cpu().numpy()


def encode_text_tokens(module, tokens: torch.Tensor, device: torch.device, precision: str) -> np.ndarray:
    """Token ids (B, L) -> L2-normalized float32 (B, D)."""
    fit_torch()
    with torch.inference_mode(), autocast(device, precision):
        feats = module.encode_text(tokens.to(device))
    return F.normalize(feats.float(), dim=-1).cpu().numpy()
