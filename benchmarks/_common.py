"""Shared benchmark helpers: synthetic JPEG folders and the bare open_clip baseline loop."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image

HERE = Path(__file__).parent
open_clip.add_model_config(HERE / "model_configs")


def make_jpegs(folder: Path, n: int, size: int = 256) -> list[str]:
    """n ShapeWorld scenes rendered at `size` px, saved as JPEG (reused when already there)."""
    from lab.data.world import draw_scene, item_rng, render
    folder.mkdir(parents=True, exist_ok=True)
    paths = [str(folder / f"{i:06d}.jpg") for i in range(n)]
    for i, p in enumerate(paths):
        if not os.path.exists(p):
            render(draw_scene(item_rng(99, i)), size)[0].save(p, quality=90)
    return paths


def bare_open_clip(module, preprocess, paths, batch_size, device, dtype=None) -> np.ndarray:
    """The loop from open_clip's README, batched: decode, preprocess, encode, normalize."""
    out = []
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        for s in range(0, len(paths), batch_size):
            x = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths[s:s + batch_size]])
            f = module.encode_image(x.to(device))
            out.append(torch.nn.functional.normalize(f.float(), dim=-1).cpu().numpy())
    return np.concatenate(out)


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - t
