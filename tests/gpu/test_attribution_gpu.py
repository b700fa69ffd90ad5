"""Every attribution method on the device, on a ViT and a ResNet: finite maps in [0, 1], batched equal to one
by one, and the same maps as the CPU's fp32 computation (r >= 0.99).

SmoothGrad and the random baseline draw their noise on the CPU, so the device and the CPU see the same
noise (two noise streams of 12 samples correlate at only r = 0.81 to 0.99 on the tiny models); a batch
draws noise for the whole batch, so they are not compared with one by one. The random maps must match
exactly."""
import numpy as np
import pytest

from lab.data.shapeworld import WorldDataset
from lab.studies import attribution as at

from .conftest import CUDA, DEVICE, HALF_ATOL, load

TEXTS = ["a red circle", "a blue square"]
R_FLOOR = 0.99
STOCHASTIC = {"random", "smoothgrad"}  # a batch's noise is drawn for the batch: one by one draws other noise


@pytest.fixture(scope="module")
def images():
    ds = WorldDataset("test", 4)
    return [ds.source(i) for i in range(4)]


@pytest.fixture(scope="module", params=["lab-vit-tiny", "lab-rn-tiny"])
def pair(request, tmp_path_factory):
    """(model on the device at its default precision, the same model on the CPU in fp32)."""
    cache = tmp_path_factory.mktemp("attr-cache")
    return load(request.param, cache=cache), load(request.param, device="cpu", precision="fp32", cache=cache)


def _maps(model, images, method, batch_size=4, **kw):
    return at.attribute(model, images, TEXTS, method=method, batch_size=batch_size, cache=False, progress=False,
                        **kw)


def _r(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_every_method_applies(pair):
    dev, _ = pair
    methods = at.list_methods(dev)
    assert set(at.PIXEL_METHODS) <= set(methods)
    assert {"relevance", "rollout"} <= set(methods) if at.is_vit(dev) else {"gradcam", "gradcam++"} <= set(methods)
    assert str(dev.device).startswith(DEVICE)


@pytest.mark.parametrize("method", list(at.METHODS))
def test_maps_on_the_device(pair, images, method):
    dev, cpu = pair
    if method not in at.list_methods(dev):
        pytest.skip(f"{method} does not apply to {dev.name}")
    got = _maps(dev, images, method)
    assert got.maps.shape == (4, len(TEXTS), dev.image_size, dev.image_size)
    assert np.isfinite(got.maps).all() and got.maps.min() >= 0 and got.maps.max() <= 1
    assert np.isfinite(got.scores).all()
    if method not in STOCHASTIC:
        single = np.concatenate([_maps(dev, [im], method, batch_size=1).maps for im in images])
        np.testing.assert_allclose(got.maps, single, atol=HALF_ATOL, err_msg=f"{method}: batched vs one by one")
    if method == "smoothgrad":  # seeded on the device too
        np.testing.assert_array_equal(got.maps, _maps(dev, images, method).maps)
    a, b = got, _maps(cpu, images, method)
    r = _r(a.maps, b.maps)
    per_map = [_r(x, y) for x, y in zip(a.maps.reshape(-1, *a.maps.shape[2:]), b.maps.reshape(-1, *b.maps.shape[2:]))]
    assert r >= R_FLOOR, f"{dev.name} {method}: maps on {DEVICE} vs CPU fp32 r = {r:.4f}; per map {np.round(per_map, 4)}"
    np.testing.assert_allclose(a.scores, b.scores, rtol=2e-2 if CUDA else 1e-4, atol=2e-2 if CUDA else 1e-4)
    if method == "random":
        np.testing.assert_array_equal(a.maps, b.maps)
