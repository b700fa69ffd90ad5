"""A transformers checkpoint through the lab against transformers' own batched loop (CPU). Prints
figures as ratios against that baseline, measured in the same run on the same JPEG files.

    python benchmarks/bench_transformers.py [--n 512] [--batch 32] [--family clip]

The checkpoint is a seeded-random ViT-B/32-shaped model (12 layers, 768 wide, 224 px) saved as the hub
serves it (tests/_transformers_checkpoints.py builds its tokenizer and processor files offline).
1. cold: lab.encode_images (a fresh cache) vs the loop from transformers' docs, batched: PIL open,
   the checkpoint's image processor, get_image_features, normalize (floor: lab >= 0.9x its images/s)
2. warm: the same call again, every vector from the cache (floor: >= 50x faster than cold)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import lab
from _common import HERE, make_jpegs, timed

sys.path.insert(0, str(HERE.parent))
from tests import _transformers_checkpoints as ckpt  # noqa: E402

B32 = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)


def transformers_loop(folder: Path, paths: list[str], batch: int) -> np.ndarray:
    import transformers
    model = transformers.AutoModel.from_pretrained(folder).eval()
    processor = transformers.AutoImageProcessor.from_pretrained(folder)
    out = []
    with torch.inference_mode():
        for s in range(0, len(paths), batch):
            pixels = processor(images=[Image.open(p).convert("RGB") for p in paths[s:s + batch]],
                               return_tensors="pt")["pixel_values"]
            f = model.get_image_features(pixel_values=pixels)
            f = f if isinstance(f, torch.Tensor) else f.pooler_output
            out.append(torch.nn.functional.normalize(f, dim=-1).numpy())
    return np.concatenate(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=512, help="JPEG files of 256 px")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--family", default="clip", choices=ckpt.FAMILIES)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = ckpt.save_checkpoint(args.family, tmp, image_size=224, patch_size=32, tower=B32)  # ViT-B/32-sized
        paths = make_jpegs(HERE / ".data" / "jpegs256", args.n)
        ref, t_ref = timed(transformers_loop, folder, paths, args.batch)
        model = lab.load_model(folder, cache=tmp / "cache", device="cpu")
        cold, t_cold = timed(model.encode_images, paths, batch_size=args.batch, progress=False)
        warm, t_warm = timed(model.encode_images, paths, batch_size=args.batch, progress=False)
    cos = np.sum(cold * ref, 1)
    print(f"{args.family} (ViT-B/32-sized, random), {args.n} JPEGs of 256 px, batch {args.batch}, CPU")
    print(f"  transformers' own loop : {args.n / t_ref:8.1f} images/s")
    verdict = lambda ok: "met" if ok else "MISSED"  # noqa: E731
    print(f"  lab, cold cache        : {args.n / t_cold:8.1f} images/s  = {t_ref / t_cold:.2f}x transformers "
          f"(floor 0.9x: {verdict(t_ref / t_cold >= 0.9)})")
    print(f"  lab, cached re-run     : {args.n / t_warm:8.1f} images/s  = {t_cold / t_warm:.0f}x the cold run "
          f"(floor 50x: {verdict(t_cold / t_warm >= 50)})")
    print(f"  agreement with transformers: cosine min {cos.min():.6f}, mean {cos.mean():.6f}")
    assert np.array_equal(cold, warm)


if __name__ == "__main__":
    main()
