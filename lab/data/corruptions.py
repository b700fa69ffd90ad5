"""ImageNet-C-style corruptions at severities 1-5, numpy/PIL only (small images, deterministic).

The common types of Hendrycks & Dietterich (2019), re-implemented for 64-px images:
noise (gaussian, shot, impulse), blur (defocus, motion), digital (brightness, contrast,
pixelate, jpeg). `corrupt(img, name, severity, seed)`.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

__all__ = ["CORRUPTIONS", "corrupt"]

CORRUPTIONS = ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "motion_blur",
               "brightness", "contrast", "pixelate", "jpeg_compression"]


def _motion(img: Image.Image, length: int) -> Image.Image:
    """Horizontal box blur of `length` px; edges extended, not wrapped."""
    a = np.asarray(img, float)
    pad = np.pad(a, ((0, 0), (length // 2, length - 1 - length // 2), (0, 0)), mode="edge")
    out = sum(pad[:, k:k + a.shape[1]] for k in range(length)) / length
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def corrupt(img: Image.Image, name: str, severity: int, seed: int = 0) -> Image.Image:
    if name not in CORRUPTIONS:
        raise KeyError(f"unknown corruption {name!r}; types are {CORRUPTIONS}")
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 1..5, got {severity}")
    s = severity - 1
    rng = np.random.default_rng(seed)
    x = np.asarray(img, float) / 255
    if name == "gaussian_noise":
        x = x + rng.normal(0, [0.08, 0.12, 0.18, 0.26, 0.38][s], x.shape)
    elif name == "shot_noise":
        lam = [60, 25, 12, 5, 3][s]
        x = rng.poisson(x * lam) / lam
    elif name == "impulse_noise":
        amount = [0.03, 0.06, 0.09, 0.17, 0.27][s]
        u = rng.random(x.shape[:2])
        x = x.copy()
        x[u < amount / 2] = 0
        x[u > 1 - amount / 2] = 1
    elif name == "defocus_blur":
        return img.filter(ImageFilter.GaussianBlur([0.6, 1.0, 1.5, 2.2, 3.0][s]))
    elif name == "motion_blur":
        return _motion(img, [3, 5, 7, 10, 14][s])
    elif name == "brightness":
        x = x + [0.1, 0.2, 0.3, 0.4, 0.5][s]
    elif name == "contrast":
        c = [0.4, 0.3, 0.2, 0.1, 0.05][s]
        m = x.mean(axis=(0, 1), keepdims=True)
        x = (x - m) * c + m
    elif name == "pixelate":
        w, h = img.size
        f = [0.6, 0.5, 0.4, 0.3, 0.25][s]
        return img.resize((max(1, int(w * f)), max(1, int(h * f))), Image.BOX).resize((w, h), Image.NEAREST)
    elif name == "jpeg_compression":
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=[25, 18, 15, 10, 7][s])
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return Image.fromarray((np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8))
