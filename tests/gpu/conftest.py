"""The GPU suite: what the lab does on a CUDA device, against its own CPU fp32 path.

    python -m pytest -q tests/gpu                           # on a machine with CUDA (else: all skipped)
    LAB_GPU_TESTS_ON_CPU=1 python -m pytest -q tests/gpu    # the same tests on the CPU, to develop them

Without CUDA every test here is skipped, so CI never runs them. With LAB_GPU_TESTS_ON_CPU=1 and no
CUDA the device is "cpu" and the reduced precision is bf16 instead of fp16 (fp16 needs a GPU), with
tolerances to match; the decode="gpu" tensor pipeline then runs on CPU tensors. Sizes are small on
the CPU (2 cores) and larger on the GPU; the whole suite must take well under 2 minutes on an H200.
"""
import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

HERE = Path(__file__).parent
CUDA = torch.cuda.is_available()
ON_CPU = os.environ.get("LAB_GPU_TESTS_ON_CPU", "") not in ("", "0")
DEVICE = "cuda" if CUDA else "cpu"
HALF = "fp16" if CUDA else "bf16"  # the reduced precision under test
# how far the reduced precision may move a normalized embedding / a map entry from fp32
HALF_COS = 0.999 if CUDA else 0.995   # bf16 keeps 8 bits of mantissa, fp16 11
HALF_ATOL = 5e-3 if CUDA else 3e-2   # attribution maps in [0, 1], batched vs one by one
N_WORLD = 48 if CUDA else 12          # ShapeWorld JPEGs in the agreement set
# the floors of issue 23, item 3: GPU decode vs the PIL path
MEAN_COS, MIN_COS = 0.999, 0.995
# the built-in models and ViT-B-32 with seeded random weights (item 3)
AGREEMENT_MODELS = [("lab-vit-tiny", None), ("lab-rn-tiny", None), ("ViT-B-32", "random")]


def pytest_collection_modifyitems(config, items):
    if CUDA or ON_CPU:
        return
    skip = pytest.mark.skip(reason="no CUDA device (LAB_GPU_TESTS_ON_CPU=1 runs these on the CPU)")
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(skip)


def pytest_report_header(config):
    if CUDA:
        return f"tests/gpu: on {torch.cuda.get_device_name()} (fp16)"
    return "tests/gpu: on the CPU (LAB_GPU_TESTS_ON_CPU=1; bf16 for fp16)" if ON_CPU else None


def load(name, pretrained=None, device=DEVICE, precision=None, cache=None):
    import lab
    return lab.load_model(name, pretrained=pretrained, device=device, precision=precision, cache=cache)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (N, D) arrays of normalized rows (NaN where either row is NaN)."""
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _world(i: int, size: int = 256) -> Image.Image:
    from lab.data.world import draw_scene, item_rng, render
    return render(draw_scene(item_rng(99, i)), size, with_masks=False)[0]


def _exif_rotated(img: Image.Image) -> bytes:
    """A JPEG whose EXIF says 'rotate 90° clockwise to display' (orientation 6)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


@pytest.fixture(scope="session")
def image_set(tmp_path_factory):
    """{"world": [paths], "odd": {kind: path}}: 256-px ShapeWorld JPEGs, and odd files: grey, tiny,
    huge, EXIF-rotated, progressive, 4:2:0 and 4:4:4 JPEGs, a CMYK JPEG, a PNG, an RGBA PNG."""
    root = tmp_path_factory.mktemp("gpu-images")
    world = []
    for i in range(N_WORLD):
        p = root / f"world{i:03d}.jpg"
        _world(i).save(p, quality=90)
        world.append(str(p))
    base = _world(1000, 320).crop((0, 20, 320, 260))  # 320x240: not square, so rotations show
    big = _world(1001, 512).resize((4000, 3000), Image.BICUBIC)
    odd = {
        "grey": lambda p: base.convert("L").save(p, quality=90),
        "tiny": lambda p: base.resize((12, 9), Image.BICUBIC).save(p, quality=95),
        "huge": lambda p: big.save(p, quality=85),
        "exif_rotated": lambda p: p.write_bytes(_exif_rotated(base)),
        "progressive": lambda p: base.save(p, quality=90, progressive=True),
        "subsampling_444": lambda p: base.save(p, quality=95, subsampling=0),
        "cmyk": lambda p: base.convert("CMYK").save(p, "JPEG", quality=90),
    }
    odd_png = {
        "png": lambda p: base.save(p),
        "rgba_png": lambda p: base.convert("RGBA").save(p),
    }
    files = {}
    for kind, write in {**odd, **odd_png}.items():
        p = root / (kind + (".png" if kind in odd_png else ".jpg"))
        write(p)
        files[kind] = str(p)
    assert Image.open(files["cmyk"]).mode == "CMYK"
    assert Image.open(files["exif_rotated"]).getexif().get(0x0112) == 6
    return {"world": world, "odd": files}


@pytest.fixture(scope="session")
def agreement_models(tmp_path_factory):
    """The agreement models loaded once on the device: {name: model} (a cache of their own)."""
    cache = tmp_path_factory.mktemp("gpu-models-cache")
    return {name: load(name, pretrained, cache=cache) for name, pretrained in AGREEMENT_MODELS}
