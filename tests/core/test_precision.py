"""Precision on the CPU: bf16 runs in bf16 (its own fingerprint and cache rows, close to fp32),
fp16 is refused with a clear error before anything is built."""
import numpy as np
import pytest

import lab
from lab.errors import BadInput

from conftest import NANO, count_forward, write_images


def test_bf16_on_cpu_has_its_own_fingerprint_and_stays_close_to_fp32(nano, cache, tmp_path):
    bf16 = lab.load_model(NANO, pretrained="random", cache=cache, device="cpu", precision="bf16")
    assert bf16.precision == "bf16" and nano.precision == "fp32" and bf16.fingerprint != nano.fingerprint
    paths = write_images(tmp_path / "imgs", 4, size=(32, 32))
    texts = ["a red circle", "two blue squares", "a photo of a dog"]
    full = nano.encode_images(paths, progress=False), nano.encode_texts(texts, progress=False)
    seen = count_forward(bf16)
    half = bf16.encode_images(paths, progress=False), bf16.encode_texts(texts, progress=False)
    assert seen == {"images": 4, "texts": 3}  # computed, not served from the fp32 rows of the same cache
    for a, b in zip(full, half):
        assert a.dtype == b.dtype == np.float32
        cosine = (a * b).sum(1)
        assert cosine.min() > 0.99  # close to fp32 ...
        assert np.abs(a - b).max() > 1e-4  # ... but really computed in bf16
    again = lab.load_model(NANO, pretrained="random", cache=cache, device="cpu", precision="bf16")
    assert again.fingerprint == bf16.fingerprint  # stable: the bf16 rows are found again


def test_fp16_on_cpu_is_refused_clearly(cache):
    for call in (lambda: lab.load_model(NANO, pretrained="random", cache=cache, device="cpu", precision="fp16"),
                 lambda: lab.load_model("lab-vit-tiny", cache=cache, device="cpu", precision="fp16")):
        with pytest.raises(BadInput, match="precision='fp16' needs a GPU; on the CPU use 'fp32' or 'bf16'"):
            call()
    with pytest.raises(BadInput, match="not one of"):
        lab.load_model(NANO, pretrained="random", cache=cache, device="cpu", precision="int8")
