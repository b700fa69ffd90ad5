"""Turning whatever a user passes as an image into an RGB PIL image, or a clear error.

Accepted: file paths, PIL images, numpy arrays (H, W), (H, W, 1|3|4) uint8 or float in [0, 1].
Modes L/LA/P/RGBA/CMYK/I;16/I/F are converted to RGB (alpha composited on white, 16-bit and
float scaled to 8 bit). Tiny images and decompression bombs are refused with the reason.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import warnings

import numpy as np
from PIL import Image

from ..errors import BadInput

__all__ = ["MIN_SIDE", "MAX_PIXELS", "describe", "to_rgb", "open_image", "decode_bytes", "as_rgb_image", "load_rgb_image",
           "pixel_key", "file_key"]

MIN_SIDE = 2                   # px; a 1x1 image carries no content for CLIP
MAX_PIXELS = 178_956_970        # PIL's decompression-bomb error threshold (2x its warning limit)


def describe(item) -> str:
    """Short human name of an input item for error messages."""
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    if isinstance(item, Image.Image):
        return f"<PIL image {item.mode} {item.width}x{item.height}>"
    if isinstance(item, np.ndarray):
        return f"<array {item.shape} {item.dtype}>"
    return f"<{type(item).__name__}>"


def to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        scale = 65535.0 if img.mode.startswith("I;16") else max(float(a.max()), 1.0)
        if img.mode == "F" and a.max() <= 1.0:
            scale = 1.0
        return Image.fromarray(np.clip(a / scale * 255.0, 0, 255).astype(np.uint8)).convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def _check_size(width: int, height: int, max_pixels: int = MAX_PIXELS):
    if min(width, height) < MIN_SIDE:
        raise ValueError(f"image is {width}x{height} px, smaller than {MIN_SIDE} px on a side")
    if width * height > max_pixels:
        raise ValueError(
            f"image is {width}x{height} = {width * height:,} px, over the limit of {max_pixels:,} px "
            "(decompression-bomb guard); set model.max_image_pixels higher to allow larger images")


def open_image(data: bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Image file bytes -> a PIL image with only its header read (format, mode, size), checked
    against the size limits; nothing is decoded yet."""
    if not data:
        raise ValueError("file is empty")
    pil_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # _check_size applies our limit
    try:
        img = Image.open(io.BytesIO(data))
    except Exception as e:  # PIL names the BytesIO object (its address): drop it, so messages repeat
        reason = re.sub(r" <_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", str(e))
        raise ValueError(f"not a readable image ({type(e).__name__}: {reason})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = pil_limit
    _check_size(img.width, img.height, max_pixels)
    return img


def decode_bytes(data: bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode image file bytes to RGB; the size is checked from the header before decoding."""
    img = open_image(data, max_pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img.load()
        except Exception as e:
            raise ValueError(f"corrupt or truncated image ({type(e).__name__}: {e})") from None
    return to_rgb(img)


def _array_to_image(arr: np.ndarray) -> Image.Image:
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ValueError(f"array of shape {a.shape} is not an image; expected (H, W), (H, W, 3) or (H, W, 4)")
    if a.dtype == np.uint8:
        pass
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ValueError("float image array contains NaN or inf")
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif a.dtype == np.uint16:
        a = (a.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    else:
        raise ValueError(f"array dtype {a.dtype} is not an image type; use uint8, uint16 or float in [0, 1]")
    return Image.fromarray(a)


def as_rgb_image(item, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """An in-memory item (PIL image or array) as a checked RGB image."""
    if isinstance(item, Image.Image):
        img = item
    elif isinstance(item, np.ndarray):
        img = _array_to_image(item)
    else:
        raise TypeError(f"{type(item).__name__} is not an image; pass a path, a PIL image or a numpy array")
    _check_size(img.width, img.height, max_pixels)
    return to_rgb(img)


def load_rgb_image(item, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """A path, PIL image or array as a checked RGB image (for figures and attribution; the batch
    encoder reads files its own way, with hashing and failure reports)."""
    if isinstance(item, (str, os.PathLike)):
        try:
            with open(item, "rb") as fh:
                return decode_bytes(fh.read(), max_pixels)
        except (OSError, ValueError) as e:
            raise BadInput(f"{item}: {getattr(e, 'strerror', None) or e}; pass a readable image file") from e
    return as_rgb_image(item, max_pixels)


def pixel_key(img: Image.Image) -> str:
    """Content key of decoded pixels (after conversion to RGB)."""
    h = hashlib.sha256(f"px:{img.width}x{img.height}:".encode())
    h.update(img.tobytes())
    return "px:" + h.hexdigest()


def file_key(digest: str) -> str:
    """Content key of an image file from the sha256 of its bytes."""
    return "file:" + digest
