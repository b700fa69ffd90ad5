"""Encoding: input kinds, order, every kind of bad input, strict mode, the dataset protocol."""
import numpy as np
import pytest
import torch
from PIL import Image

import lab
from lab.data import FileList, ImageFolder

from conftest import count_forward, write_images


def _rgb(seed=0, size=(40, 48)):
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def test_paths_pil_arrays_agree_and_keep_order(nano, tmp_path):
    arr = _rgb()
    path = tmp_path / "a.png"
    Image.fromarray(arr).save(path)
    other = _rgb(1)
    emb = nano.encode_images([str(path), Image.fromarray(arr), arr, other], progress=False)
    assert emb.shape == (4, nano.embed_dim) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(emb[0], emb[1], atol=1e-6)
    np.testing.assert_allclose(emb[1], emb[2], atol=1e-6)
    assert np.abs(emb[3] - emb[0]).max() > 1e-3
    alone = nano.encode_images([other], cache=False, progress=False)
    np.testing.assert_allclose(alone[0], emb[3], atol=1e-6)
    for single in (str(path), Image.fromarray(arr), arr):  # one image, not a sequence of rows or characters
        np.testing.assert_allclose(nano.encode_images(single, progress=False), emb[:1], atol=1e-6)


def test_worker_forward_matches_in_process(nano, tmp_path):
    paths = write_images(tmp_path, 40)
    in_workers = nano.encode_images(paths, batch_size=8, num_workers=2, cache=False, progress=False)
    in_process = nano.encode_images(paths, batch_size=8, num_workers=0, cache=False, progress=False)
    full = nano.embed_image_tensors(torch.stack([nano.preprocess(Image.open(p)) for p in paths]))
    np.testing.assert_allclose(in_workers, in_process, atol=1e-6)
    np.testing.assert_allclose(in_process, full, atol=1e-6)  # split preprocessing == open_clip's transform


def test_modes_convert_to_rgb(nano, tmp_path):
    gray = np.random.default_rng(2).integers(0, 256, (40, 48), dtype=np.uint8)
    L = Image.fromarray(gray, "L")
    i16 = Image.fromarray(gray.astype(np.uint16) * 257)
    assert i16.mode == "I;16"
    rgba = Image.fromarray(np.dstack([_rgb(3), np.full((40, 48), 255, np.uint8)]), "RGBA")
    items = [L, Image.fromarray(np.dstack([gray, np.full_like(gray, 255)]), "LA"), L.convert("P"),
             rgba, Image.fromarray(_rgb(3)).convert("CMYK"), i16]
    paths = []
    for k, im in enumerate(items):
        p = tmp_path / f"m{k}.{'tif' if im.mode in ('CMYK', 'I;16') else 'png'}"
        im.save(p)
        paths.append(str(p))
    emb, failures = nano.encode_images(items + paths, progress=False, return_failures=True)
    assert failures == [] and np.isfinite(emb).all()
    np.testing.assert_allclose(emb[5], emb[0], atol=1e-5)   # 16-bit gray scaled like its 8-bit twin
    np.testing.assert_allclose(emb[1], emb[0], atol=1e-5)   # opaque LA == L
    np.testing.assert_allclose(emb[3], nano.encode_images([_rgb(3)], progress=False)[0], atol=1e-5)


def test_bad_items_are_skipped_and_named(nano, tmp_path):
    good = write_images(tmp_path / "good", 3)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg" * 10)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(open(good[0], "rb").read()[:200])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1)).save(tiny)
    items = [good[0], str(corrupt), str(tmp_path / "missing.png"), good[1], str(truncated), str(tmp_path),
             str(empty), str(tiny), 42, good[2]]
    with pytest.warns(UserWarning, match="7 of 10 images"):
        emb, failures = nano.encode_images(items, progress=False, return_failures=True, batch_size=2, num_workers=2)
    bad = {f.index: f for f in failures}
    assert sorted(bad) == [1, 2, 4, 5, 6, 7, 8]
    assert "not a readable image" in bad[1].reason and bad[1].item == str(corrupt)
    assert "not found" in bad[2].reason
    assert "truncated" in bad[4].reason or "readable" in bad[4].reason
    assert "folder" in bad[5].reason
    assert "empty" in bad[6].reason
    assert "1x1" in bad[7].reason
    assert "int" in bad[8].reason
    assert np.isnan(emb[[1, 2, 4, 5, 6, 7, 8]]).all() and np.isfinite(emb[[0, 3, 9]]).all()


def test_strict_raises_on_first_bad_item_naming_it(nano, tmp_path):
    good = write_images(tmp_path, 2)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    with pytest.raises(lab.BadInput, match="bad.png"):
        nano.encode_images([good[0], str(bad), good[1]], strict=True, progress=False)
    with pytest.raises(lab.BadInput, match=r"\[1\]"):
        nano.encode_texts(["ok", None], strict=True)


def test_decompression_bomb_refused(nano, tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)  # 400 Mpx, a few KB on disk
    with pytest.warns(UserWarning, match="1 of 1 images could not be encoded"):
        emb, failures = nano.encode_images([str(bomb)], progress=False, return_failures=True)
    assert len(failures) == 1 and "max_image_pixels" in failures[0].reason
    nano.max_image_pixels = 1000
    with pytest.warns(UserWarning, match="1 of 1 images could not be encoded"):
        _, failures = nano.encode_images([_rgb()], progress=False, return_failures=True)
    assert "decompression-bomb" in failures[0].reason


def test_empty_inputs(nano):
    with pytest.warns(UserWarning, match="no images"):
        assert nano.encode_images([], progress=False).shape == (0, nano.embed_dim)
    with pytest.warns(UserWarning, match="no texts"):
        assert nano.encode_texts([]).shape == (0, nano.embed_dim)


def test_texts_truncate_with_warning_and_reject_non_strings(nano):
    long = "a photo of " + "a very " * 100 + "long cat"
    with pytest.warns(UserWarning, match="1 of 3 texts are longer"), pytest.warns(UserWarning, match="is a int, not a string"):
        emb, failures = nano.encode_texts(["a cat", long, 7], return_failures=True)
    assert [f.index for f in failures] == [2] and "int" in failures[0].reason
    assert np.isfinite(emb[:2]).all() and np.isnan(emb[2]).all()
    assert nano.encode_texts("a cat").shape == (1, nano.embed_dim)


def test_image_folder_and_file_list_protocol(nano, tmp_path):
    for cls in ("cat", "dog"):
        write_images(tmp_path / "ds" / cls, 3, seed=len(cls) + ord(cls[0]))
    write_images(tmp_path / "ds" / ".ipynb_checkpoints", 2)  # hidden folders are not classes
    (tmp_path / "ds" / "cat" / "._img0000.png").write_bytes(b"AppleDouble")
    ds = ImageFolder(tmp_path / "ds", class_names={"cat": "tabby cat"})
    assert isinstance(ds, lab.data.Dataset) and ds.classes == ["tabby cat", "dog"]
    assert list(ds.labels["label"]) == [0, 0, 0, 1, 1, 1]
    emb = nano.encode_images(ds, progress=False)
    direct = nano.encode_images(FileList(ds.paths), progress=False)
    np.testing.assert_allclose(emb, direct, atol=1e-6)
    with pytest.raises(lab.BadInput, match="no class sub-folders"):
        ImageFolder(tmp_path / "ds" / "cat")


class _Stalls:
    """A dataset (the lab's protocol) whose items from `stall` on never arrive: a worker stuck for good."""

    def __init__(self, n, stall):
        self.n, self.stall = n, stall

    def __len__(self):
        return self.n

    def content_key(self, i):
        return f"stalls:{i}"

    def source(self, i):
        if i >= self.stall:
            import time
            time.sleep(3600)
        return _rgb(i)


def test_a_batch_that_never_arrives_stops_the_run_naming_it_and_keeps_what_was_done(nano, monkeypatch):
    monkeypatch.setenv("LAB_WORKER_TIMEOUT", "3")
    with pytest.raises(lab.errors.WorkerTimeout) as info:
        nano.encode_images(_Stalls(128, stall=64), batch_size=32, num_workers=1, progress=False)
    message = str(info.value)
    assert "batch 3 of 4" in message and "items 64..95" in message and "within 3 s" in message
    assert "LAB_WORKER_TIMEOUT" in message and "num_workers=0" in message
    seen = count_forward(nano)  # counts forwards in this process: num_workers=0
    done = nano.encode_images(_Stalls(64, stall=64), batch_size=32, num_workers=0, progress=False)
    assert seen["images"] == 0 and np.isfinite(done).all()  # the two batches before it came from the cache
    monkeypatch.setenv("LAB_WORKER_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="LAB_WORKER_TIMEOUT"):
        nano.encode_images(_Stalls(128, stall=128), batch_size=32, num_workers=1, cache=False, progress=False)
