"""Decoding on the device against the PIL path (issue 23, items 2, 3 and 6), and the reduced precision
on the device against fp32."""
import warnings

import numpy as np
import pytest

import lab
from lab.data import list_images

from .conftest import (AGREEMENT_MODELS, CUDA, DEVICE, HALF, HALF_COS, MEAN_COS, MIN_COS, N_WORLD, cosines,
                       load)

ENC = dict(cache=False, progress=False, return_failures=True)
PNGS = ("png", "rgba_png")


def _all(image_set):
    odd = image_set["odd"]
    return image_set["world"] + list(odd.values()), ["world"] * N_WORLD + list(odd)


def _table(kinds, cos) -> str:
    worst = np.argsort(cos)[:6]
    return ", ".join(f"{kinds[i]}[{i}] {cos[i]:.5f}" for i in worst)


@pytest.mark.parametrize("name", [n for n, _ in AGREEMENT_MODELS])
def test_gpu_decode_agrees_with_the_pil_path(agreement_models, image_set, name):
    model = agreement_models[name]
    paths, kinds = _all(image_set)
    pil, f_pil = model.encode_images(paths, decode="cpu", **ENC)
    dev, f_dev = model.encode_images(paths, decode="gpu", **ENC)
    assert f_pil == [] and f_dev == [], f"{f_pil} / {f_dev}"
    assert np.isfinite(pil).all() and np.isfinite(dev).all()
    cos = cosines(pil, dev)
    assert cos.mean() >= MEAN_COS and cos.min() >= MIN_COS, \
        f"{name}: mean cos {cos.mean():.5f} (floor {MEAN_COS}), min {cos.min():.5f} (floor {MIN_COS}); worst: " \
        f"{_table(kinds, cos)}"
    jpeg = [i for i, k in enumerate(kinds) if k not in PNGS + ("cmyk",)]
    # the device path must have run: its resize is not PIL's, so some JPEG rows differ in their last bits
    assert not np.array_equal(pil[jpeg], dev[jpeg]), "decode='gpu' gave PIL's rows bit for bit: did it run?"
    png = [kinds.index(k) for k in PNGS]  # PNGs always take the PIL path: the same pixels
    np.testing.assert_allclose(dev[png], pil[png], atol=2e-3 if CUDA else 1e-6)


def test_auto_is_gpu_on_cuda_and_cpu_elsewhere(agreement_models, image_set):
    model = agreement_models["lab-vit-tiny"]
    paths = image_set["world"][:8] + [image_set["odd"]["cmyk"], image_set["odd"]["png"]]
    auto, _ = model.encode_images(paths, **ENC)
    same = model.encode_images(paths, decode="gpu" if DEVICE == "cuda" else "cpu", **ENC)[0]
    np.testing.assert_allclose(auto, same, atol=1e-5)
    with pytest.raises(lab.LabError, match="decode"):
        model.encode_images(paths, decode="nvjpeg", **ENC)


@pytest.mark.parametrize("decode", ["cpu", "gpu", "auto"])
def test_folder_with_a_corrupt_and_a_cmyk_jpeg(agreement_models, image_set, tmp_path, decode):
    """The corrupt JPEG (cut off half way: its header reads, its scan does not) is named and its row is
    NaN; the CMYK JPEG (which nvJPEG refuses) goes the PIL way and is encoded like the rest."""
    model = agreement_models["lab-vit-tiny"]
    folder = tmp_path / "folder"
    folder.mkdir()
    for i, p in enumerate(image_set["world"][:10]):
        (folder / f"ok{i:02d}.jpg").write_bytes(open(p, "rb").read())
    (folder / "cmyk.jpg").write_bytes(open(image_set["odd"]["cmyk"], "rb").read())
    whole = open(image_set["world"][10], "rb").read()
    (folder / "corrupt.jpg").write_bytes(whole[:len(whole) // 2])
    paths = [str(p) for p in list_images(folder)]
    assert len(paths) == 12
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the "1 of 12 images could not be encoded" summary
        emb, failures = model.encode_images(paths, decode=decode, **ENC)
        ref, _ = model.encode_images(paths, decode="cpu", **ENC)
    corrupt, cmyk = paths.index(str(folder / "corrupt.jpg")), paths.index(str(folder / "cmyk.jpg"))
    assert [(f.index, f.item) for f in failures] == [(corrupt, paths[corrupt])], failures
    assert failures[0].reason
    assert np.isnan(emb[corrupt]).all()
    rest = [i for i in range(len(paths)) if i != corrupt]
    assert np.isfinite(emb[rest]).all()
    assert cosines(emb[rest], ref[rest]).min() >= MIN_COS
    assert cosines(emb[[cmyk]], ref[[cmyk]])[0] >= 0.9999  # the same PIL pixels
    with pytest.raises(lab.BadInput, match="corrupt.jpg"):
        model.encode_images(paths, decode=decode, cache=False, progress=False, strict=True)


@pytest.mark.parametrize("name,pretrained", AGREEMENT_MODELS)
def test_reduced_precision_against_fp32_on_the_device(image_set, name, pretrained, tmp_path):
    """fp16 (bf16 on the CPU) against fp32 on the same device, and fp32 there against the CPU's fp32."""
    paths = image_set["world"][:16]
    texts = [f"a photo of {k} {c} shapes" for k in ("one", "two", "three") for c in ("red", "green", "blue")]
    half = load(name, pretrained, precision=HALF, cache=tmp_path / "c")
    full = load(name, pretrained, precision="fp32", cache=tmp_path / "c")
    assert half.fingerprint != full.fingerprint  # precision is part of what a cached vector depends on
    if CUDA:
        assert load(name, pretrained, cache=tmp_path / "c").precision == "fp16"  # the default there
    for what, a, b in (("images", half.encode_images(paths, decode="cpu", **ENC)[0],
                        full.encode_images(paths, decode="cpu", **ENC)[0]),
                       ("texts", half.encode_texts(texts, cache=False, progress=False),
                        full.encode_texts(texts, cache=False, progress=False))):
        assert np.isfinite(a).all() and np.isfinite(b).all()
        np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, atol=1e-3)
        cos = cosines(a, b)
        assert cos.min() >= HALF_COS, f"{name} {what}: {HALF} vs fp32 min cos {cos.min():.5f} < {HALF_COS}"
    if CUDA:  # fp32 on the GPU (TF32 convolutions allowed) against fp32 on the CPU
        cpu = load(name, pretrained, device="cpu", precision="fp32", cache=tmp_path / "c")
        cos = cosines(full.encode_images(paths, decode="cpu", **ENC)[0], cpu.encode_images(paths, **ENC)[0])
        assert cos.min() >= 0.999, f"{name}: GPU fp32 vs CPU fp32 min cos {cos.min():.6f}"
