"""The torch side of encoding: a model's eval transform from its preprocessing config (open_clip's,
or a transformers checkpoint's own processor, crop rounding included), split into per-image PIL ops
and per-batch tensor ops, and the image tower a forward pass (in this process or a DataLoader
worker) runs.
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


class CenterCropFloor(torch.nn.Module):
    """Centre crop that rounds the offset down, as transformers' image processors do (torchvision's
    CenterCrop rounds half to even: on an odd margin the two differ by a pixel). PIL images and
    (..., H, W) tensors; the image must be at least the crop's size (it is, after the resize)."""

    def __init__(self, size):
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else tuple(size)

    def forward(self, img):
        from torchvision.transforms import functional as TF
        h, w = (img.height, img.width) if hasattr(img, "height") else img.shape[-2:]
        ch, cw = self.size
        return TF.crop(img, (h - ch) // 2, (w - cw) // 2, ch, cw)

    def __repr__(self):
        return f"CenterCropFloor(size={self.size})"


def _transformers_transform(cfg: dict):
    """A transformers processor's eval steps (lab.core._hf.preprocess_cfg) as a torchvision Compose:
    resize (shortest edge, or squash to (H, W)), centre crop rounded down, RGB, rescale, normalize."""
    from open_clip.transform import MaybeConvertMode, MaybeToTensor
    from torchvision.transforms import Compose, InterpolationMode, Normalize, Resize
    ops = []
    if cfg["resize"] is not None:
        size = cfg["resize"] if isinstance(cfg["resize"], int) else tuple(cfg["resize"])
        ops.append(Resize(size, interpolation=InterpolationMode(cfg["interpolation"]), antialias=True))
    if cfg["crop"] is not None:
        ops.append(CenterCropFloor(cfg["crop"]))
    return Compose(ops + [MaybeConvertMode(cfg["mode"]), MaybeToTensor(), Normalize(cfg["mean"], cfg["std"])])


def eval_transform(preprocess_cfg: dict):
    """The model's eval transform, PIL image -> normalized (3, H, W): open_clip's for its configs,
    the checkpoint processor's steps for a transformers checkpoint (its config has "crop_rounding")."""
    if "crop_rounding" in preprocess_cfg:
        return _transformers_transform(preprocess_cfg)
    from open_clip.transform import PreprocessCfg, image_transform_v2
    return image_transform_v2(PreprocessCfg(**preprocess_cfg), is_train=False)


def split_preprocess(preprocess):
    """open_clip's eval transform ends in ToTensor + Normalize. Split it: PIL ops per image (in
    DataLoader workers, shipped as uint8, 4x smaller) and the tensor ops once per batch, with
    results identical to the whole transform. -> (per_image, per_batch)."""
    from torchvision.transforms import Compose, Normalize
    ts = getattr(preprocess, "transforms", [])
    if len(ts) >= 2 and isinstance(ts[-1], Normalize) and type(ts[-2]).__name__ in ("ToTensor", "MaybeToTensor"):
        return _PilToUint8(Compose(ts[:-2])), _BatchNormalize(ts[-1].mean, ts[-1].std)
    return preprocess, None


def half_copy(module):
    """An fp16 copy of a module for inference on CUDA: about 1.4x the forward speed of fp16 autocast on
    an H200 (issue 23). Safe as OpenAI's own release ran it: LayerNorm and softmax accumulate in fp32
    in torch's CUDA kernels, and outputs are checked for overflow (NON_FINITE) before they are kept."""
    import copy
    return copy.deepcopy(module).half().eval()


def _context(module, device: torch.device, precision: str):
    """Autocast for fp32 weights; nothing for a half copy, whose weights are the precision already."""
    if next(module.parameters()).dtype == torch.float16:
        return contextlib.nullcontext()
    return autocast(device, precision)


class DeviceResult:
    """A (B, D) result on its device, copied to pinned host memory as soon as it is computed:
    `numpy()` waits for this result alone, so the next batch can be queued on the GPU before it."""

    def __init__(self, values: torch.Tensor):
        self.event = None
        if values.device.type == "cuda":
            self.host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            self.host.copy_(values, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record()
        else:
            self.host = values

    def numpy(self) -> np.ndarray:
        if self.event is not None:
            self.event.synchronize()
        return self.host.numpy()


class ImageTower:
    """Preprocessed pixels (B, 3, H, W), float or uint8 -> L2-normalized float32 (B, D).
    Picklable, so CPU DataLoader workers can run it on their own batches."""

    def __init__(self, module, normalize_batch, device: torch.device, precision: str):
        self.module, self.normalize_batch, self.device, self.precision = module, normalize_batch, device, precision

    def __call__(self, pixels: torch.Tensor) -> np.ndarray:
        return self.launch(pixels).numpy()

    def launch(self, pixels: torch.Tensor) -> DeviceResult:
        """Queue the forward pass; the result is read later (asynchronous on CUDA)."""
        fit_torch()
        pixels = pixels.to(self.device, non_blocking=True)
        if pixels.dtype == torch.uint8:
            pixels = self.normalize_batch(pixels)
        dtype = next(self.module.parameters()).dtype
        with torch.inference_mode(), _context(self.module, self.device, self.precision):
            feats = self.module.encode_image(pixels.to(dtype) if dtype == torch.float16 else pixels)
        return DeviceResult(F.normalize(feats.float(), dim=-1))


def launch_text(module, tokens: torch.Tensor, device: torch.device, precision: str) -> DeviceResult:
    """Token ids (B, L) -> L2-normalized float32 (B, D), queued (asynchronous on CUDA)."""
    fit_torch()
    with torch.inference_mode(), _context(module, device, precision):
        feats = module.encode_text(tokens.to(device, non_blocking=True))
    return DeviceResult(F.normalize(feats.float(), dim=-1))


def encode_text_tokens(module, tokens: torch.Tensor, device: torch.device, precision: str) -> np.ndarray:
    """Token ids (B, L) -> L2-normalized float32 (B, D)."""
    return launch_text(module, tokens, device, precision).numpy()
