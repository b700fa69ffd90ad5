"""JPEG files to model-ready pixels on the model's device: torchvision's batched `decode_jpeg`
(nvJPEG on CUDA) and the model's resize + centre crop as tensor ops there. The same code runs on
CPU tensors, which is how it is tested on a machine without a GPU.

    resize = DeviceResize.of(model.preprocess_image)  # None: this preprocessing needs PIL
    pixels, errors = device_pixels(on_device, decoded, blobs, resize, model.device, model.preprocess_image,
                                   model.max_image_pixels)  # (b, 3, S, S) uint8 on the device, a reason per row

Which files go this way is decided from their header alone (`device_jpeg`): JPEGs in RGB or grey.
What the device decoder still refuses (a quirk nvJPEG does not take, corrupt bytes) is decoded by
PIL in this process, image by image, and a file that PIL refuses too is reported like any bad image.
Neither path applies the EXIF orientation (PIL's `exif_transpose`): pixels are used as stored.
"""
from __future__ import annotations

import warnings

import torch
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import CenterCrop, Compose, Resize

from ..errors import error_text
from ._towers import CenterCropFloor
from .images import decode_bytes, open_image

__all__ = ["device_jpeg", "DeviceResize", "device_pixels"]

_JPEG_MAGIC = b"\xff\xd8\xff"


def device_jpeg(data: bytes, max_pixels: int) -> bool:
    """Whether file bytes can go to the device decoder: a JPEG in RGB or grey (CMYK and YCCK stay with
    PIL). A file over the size limits raises the PIL path's ValueError; an unreadable one says False
    and PIL names the problem."""
    if not data.startswith(_JPEG_MAGIC):
        return False
    try:
        img = open_image(data, max_pixels)
    except ValueError as e:
        if "not a readable image" in str(e):
            return False
        raise
    return img.format == "JPEG" and img.mode in ("RGB", "L")


class DeviceResize:
    """The PIL part of a model's preprocessing (Resize to the shortest side or squash, CenterCrop or a
    transformers checkpoint's CenterCropFloor, bicubic with antialias) as tensor ops: uint8 (3, H, W) images of any sizes -> (B, 3, S, S) uint8,
    on the images' device. Images of one size are resized together."""

    def __init__(self, ops: list):
        self.transform = Compose(ops)

    @classmethod
    def of(cls, per_image) -> "DeviceResize | None":
        """From `model.preprocess_image` (lab.core._towers.split_preprocess's first part), or None when
        it has an op without an exact tensor equivalent (open_clip's 'longest' resize mode)."""
        ops = getattr(getattr(per_image, "pil_ops", None), "transforms", None)
        if ops is None:
            return None
        ops = [op for op in ops if type(op).__name__ != "MaybeConvertMode"]  # decode_jpeg gives RGB already
        if not all(type(op) in (Resize, CenterCrop, CenterCropFloor) for op in ops):
            return None
        return cls(ops)

    def __call__(self, images: list[torch.Tensor]) -> torch.Tensor:
        by_size: dict[tuple, list[int]] = {}
        for i, img in enumerate(images):
            by_size.setdefault(tuple(img.shape), []).append(i)
        out: list = [None] * len(images)
        for rows in by_size.values():
            resized = self.transform(torch.stack([images[i] for i in rows]))  # (b, 3, S, S)
            for j, i in enumerate(rows):
                out[i] = resized[j]
        return torch.stack(out)  # (B, 3, S, S) uint8


def _decode(blobs: list[torch.Tensor], device: torch.device) -> list:
    """Batched decode; when the batch fails, image by image -> a tensor or the reason, per blob."""
    with warnings.catch_warnings():  # torchvision 0.29 points to TorchCodec, which has no batched nvJPEG decode
        warnings.filterwarnings("ignore", "The image decoding and encoding capabilities of TorchVision are deprecated",
                                DeprecationWarning)
        try:
            return list(decode_jpeg(blobs, mode=ImageReadMode.RGB, device=device))
        except RuntimeError:
            out = []
            for blob in blobs:
                try:
                    out.append(decode_jpeg(blob, mode=ImageReadMode.RGB, device=device))
                except RuntimeError as e:
                    out.append(str(e))
            return out


def _device_pixels(blobs: list[torch.Tensor], resize: DeviceResize, device: torch.device, per_image,
                   max_pixels: int) -> tuple[list, list]:
    """JPEG file bytes as 1-D uint8 tensors -> ([(3, S, S) uint8 on `device` or None], [reason or None]).
    A blob the device decoder refuses is decoded by PIL (`per_image`, the model's PIL preprocessing)."""
    decoded = _decode(blobs, device)
    pixels: list = [None] * len(blobs)
    errors: list = [None] * len(blobs)
    on_device = [i for i, d in enumerate(decoded) if isinstance(d, torch.Tensor)]
    if on_device:
        resized = resize([decoded[i] for i in on_device])  # (b, 3, S, S)
        for j, i in enumerate(on_device):
            pixels[i] = resized[j]
    for i, d in enumerate(decoded):
        if isinstance(d, torch.Tensor):
            continue
        try:  # the PIL path, in this process
            pixels[i] = per_image(decode_bytes(blobs[i].numpy().tobytes(), max_pixels)).to(device)
        except Exception as e:
            errors[i] = error_text(e)
    return pixels, errors


def device_pixels(on_device: list[bool], decoded: torch.Tensor | None, blobs: list[torch.Tensor],
                  resize: DeviceResize, device: torch.device, per_image, max_pixels: int):
    """One batch's pixels on `device`, in row order, from rows decoded already (`decoded`, (n, 3, S, S)
    uint8, the rows where on_device is False) and JPEG files to decode there (`blobs`, the others).
    -> (pixels (b, 3, S, S) uint8 of the rows without error or None, [reason or None] per row)."""
    from_device = iter(zip(*_device_pixels(blobs, resize, device, per_image, max_pixels))) if blobs else iter(())
    from_pil = iter(decoded.to(device, non_blocking=True)) if decoded is not None else iter(())
    rows, errors = [], []
    for flag in on_device:
        pixels, error = next(from_device) if flag else (next(from_pil), None)
        errors.append(error)
        if error is None:
            rows.append(pixels)
    return (torch.stack(rows) if rows else None), errors
