"""Decoding JPEG files on the model's device (lab.core.device_decode), run here on CPU tensors: the
same tensor pipeline as on a GPU, compared with the PIL path on ShapeWorld JPEGs and odd files."""
import io
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import lab
from lab.core import encoding
from lab.core.device_decode import DeviceResize, device_jpeg
from lab.core.images import MAX_PIXELS
from lab.data.shapeworld import WorldDataset
from lab.errors import BadInput

from conftest import count_forward

pytestmark = pytest.mark.filterwarnings("ignore:.*could not be encoded")


def _jpeg(img: Image.Image, **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **save)
    return buf.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """40 ShapeWorld scenes as 256-px JPEGs, odd files that still decode, and files that do not."""
    root = tmp_path_factory.mktemp("jpegs")
    world = WorldDataset("test", n=40)
    files = {}
    for i in range(40):
        files[f"scene{i:02d}.jpg"] = _jpeg(world.source(i).resize((256, 256)))
    scene = world.source(0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90": neither path applies it
    files.update({
        "grey.jpg": _jpeg(scene.convert("L").resize((300, 100))),
        "tiny.jpg": _jpeg(scene.resize((3, 3))),
        "huge.jpg": _jpeg(scene.resize((3000, 2000))),
        "exif.jpg": _jpeg(scene.resize((120, 80)), exif=exif),
        "progressive.jpg": _jpeg(scene.resize((200, 150)), progressive=True),
        "cmyk.jpg": _jpeg(scene.convert("CMYK")),
        "scene.png": None,
        "truncated.jpg": _jpeg(scene.resize((256, 256)))[:1500],  # the header whole, the scan cut
        "one_pixel.jpg": _jpeg(scene.resize((1, 1))),
        "not_a_jpeg.jpg": b"\xff\xd8\xff\xe0 this is text",
    })
    paths = []
    for name, data in files.items():
        path = root / name
        if data is None:
            scene.save(path)
        else:
            path.write_bytes(data)
        paths.append(str(path))
    return paths


BROKEN = {"truncated.jpg": "corrupt or truncated", "one_pixel.jpg": "smaller than 2 px", "not_a_jpeg.jpg": "not a readable image"}


@pytest.mark.parametrize("name,pretrained", [("lab-vit-tiny", None), ("lab-rn-tiny", None), ("ViT-B-32", "random")])
def test_device_decode_agrees_with_pil(folder, tmp_path, name, pretrained):
    model = lab.load_model(name, pretrained=pretrained, device="cpu", cache=tmp_path / "cache")
    paths = folder if name.startswith("lab-") else folder[-14:]  # ViT-B-32 on 2 CPU cores: the odd files only
    pil, pil_failures = model.encode_images(paths, decode="cpu", cache=False, progress=False, return_failures=True)
    dev, dev_failures = model.encode_images(paths, decode="gpu", cache=False, progress=False, return_failures=True,
                                            num_workers=2, batch_size=16)
    names = lambda failures: {os.path.basename(f.item): f.reason for f in failures}  # noqa: E731
    assert names(dev_failures) == names(pil_failures)  # the same files named, with the same reasons
    assert set(names(dev_failures)) == set(BROKEN)
    for file, reason in names(dev_failures).items():
        assert BROKEN[file] in reason
    ok = np.isfinite(pil).all(1)
    assert np.isfinite(dev[ok]).all() and not np.isfinite(dev[~ok]).any()
    cos = (pil[ok] * dev[ok]).sum(1)
    assert cos.mean() >= 0.999 and cos.min() >= 0.995, (cos.mean(), cos.min())


def test_jpegs_travel_as_bytes_and_the_rest_is_decoded_by_pil(folder, nano):
    pending = encoding._Pending([(i, p, None) for i, p in enumerate(folder)], nano.preprocess_image, MAX_PIXELS,
                                device_jpegs=True)
    records = [pending[j] for j in range(len(folder))]
    by_name = {os.path.basename(p): r for p, r in zip(folder, records)}
    as_bytes = {n for n, r in by_name.items() if r["blob"] is not None}
    assert {"grey.jpg", "huge.jpg", "exif.jpg", "progressive.jpg", "scene00.jpg", "truncated.jpg"} <= as_bytes
    assert not as_bytes & {"cmyk.jpg", "scene.png", "one_pixel.jpg", "not_a_jpeg.jpg"}
    side = nano.image_size
    assert by_name["cmyk.jpg"]["tensor"].shape == (3, side, side)
    batch = encoding._Collate()(records)
    blob, sizes = batch["jpegs"]
    assert blob.dtype == torch.uint8 and blob.ndim == 1 and len(sizes) == len(as_bytes) == sum(
        r["on_device"] for r in batch["records"])
    assert batch["pixels"].shape == (2, 3, side, side)  # cmyk and png; the two refused files are errors


def test_device_resize_matches_pil_pixels(tmp_path):
    model = lab.load_model("lab-vit-tiny", device="cpu", cache=tmp_path / "cache")
    resize = DeviceResize.of(model.preprocess_image)
    from torchvision.io import ImageReadMode, decode_jpeg
    rng = np.random.default_rng(0)
    scene = WorldDataset("test", n=1).source(0)
    images = [scene.resize((256, 256)), scene.resize((300, 100)), scene.resize((99, 100)),
              Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8))]
    blobs = [torch.frombuffer(bytearray(_jpeg(im)), dtype=torch.uint8) for im in images]
    out = resize(decode_jpeg(blobs, mode=ImageReadMode.RGB))
    assert out.shape == (4, 3, 64, 64) and out.dtype == torch.uint8
    for data, got in zip(blobs, out):
        want = model.preprocess_image(Image.open(io.BytesIO(data.numpy().tobytes())).convert("RGB"))
        diff = (want.int() - got.int()).abs()
        assert diff.max() <= 8 and diff.float().mean() < 0.5


def test_preprocessing_without_a_tensor_equivalent(tmp_path):
    model = lab.load_model("lab-vit-tiny", device="cpu", cache=tmp_path / "c")
    from open_clip.transform import PreprocessCfg, image_transform_v2
    from lab.core._towers import split_preprocess
    cfg = {**model.preprocess_cfg, "resize_mode": "longest"}
    per_image = split_preprocess(image_transform_v2(PreprocessCfg(**cfg), is_train=False))[0]
    assert DeviceResize.of(per_image) is None
    model._runtime["preprocess_image"] = per_image
    model.preprocess_cfg = cfg
    path = tmp_path / "a.jpg"
    path.write_bytes(_jpeg(WorldDataset("test", n=1).source(0)))
    with pytest.raises(BadInput, match="resize_mode='longest'.*decode='auto' or 'cpu'"):
        model.encode_images([str(path)], decode="gpu", cache=False, progress=False)
    assert np.isfinite(model.encode_images([str(path)], decode="auto", cache=False, progress=False)).all()


def test_a_decode_mode_that_does_not_exist(nano):
    with pytest.raises(BadInput, match=r"decode='nvjpeg' is not one of \['auto', 'cpu', 'gpu'\]"):
        nano.encode_images([], decode="nvjpeg")


def test_device_jpeg_reads_the_header_only():
    scene = WorldDataset("test", n=1).source(0)
    assert device_jpeg(_jpeg(scene), MAX_PIXELS) and device_jpeg(_jpeg(scene.convert("L")), MAX_PIXELS)
    assert not device_jpeg(_jpeg(scene.convert("CMYK")), MAX_PIXELS)
    assert not device_jpeg(b"\x89PNG\r\n", MAX_PIXELS) and not device_jpeg(b"\xff\xd8\xff junk", MAX_PIXELS)
    with pytest.raises(ValueError, match="over the limit of 1,000 px"):
        device_jpeg(_jpeg(scene), 1000)  # the PIL path's limit and words


def test_the_decode_path_shares_the_cache(folder, tmp_path):
    """One fingerprint for both paths (README: the cache): GPU-decoded vectors are found by the PIL
    path and the other way round, without a forward pass."""
    model = lab.load_model("lab-vit-tiny", device="cpu", cache=tmp_path / "cache")
    good = [p for p in folder if os.path.basename(p) not in BROKEN]
    first = model.encode_images(good, decode="gpu", progress=False)
    seen = count_forward(model)  # counts forwards in this process: num_workers=0
    again = model.encode_images(good, decode="cpu", progress=False, num_workers=0)
    assert seen["images"] == 0
    np.testing.assert_array_equal(first, again)


def test_strict_stops_at_a_file_neither_decoder_reads_and_keeps_the_rest(folder, tmp_path):
    model = lab.load_model("lab-vit-tiny", device="cpu", cache=tmp_path / "cache")
    scenes = [p for p in folder if os.path.basename(p).startswith("scene0")]
    truncated = next(p for p in folder if p.endswith("truncated.jpg"))
    with pytest.raises(BadInput, match="truncated.jpg"):
        model.encode_images(scenes + [truncated], decode="gpu", strict=True, batch_size=4, num_workers=0,
                            progress=False)
    seen = count_forward(model)
    model.encode_images(scenes, decode="gpu", progress=False)
    assert seen["images"] == 0  # every scene before the bad file was stored


def test_default_workers_fit_the_cores_the_process_may_use():
    code = ("import os; os.sched_setaffinity(0, {0}); from lab.core.encoding import default_workers; "
            "print(default_workers('cpu'), default_workers('cuda'), default_workers('cuda:1'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "1", "1"]
    cpus = len(os.sched_getaffinity(0))
    assert encoding.default_workers("cpu") == min(4, cpus)
    assert encoding.default_workers("cuda") == max(1, cpus - 1)
