"""ShapeWorld: determinism, labels/boxes/masks vs pixels, captions vs labels, shift suites,
on-disk layouts read back through the dataset protocol."""
import numpy as np
import pytest

import lab
from lab.data import ImageFolder
from lab.data import world
from lab.data.corruptions import CORRUPTIONS
from lab.data.suites import SUBSET, scene_for
from lab.data.shapeworld import materialize
from lab.data.world import COLOURS, COLOUR_SYNONYMS, COUNTS, SHAPE_SYNONYMS, SHAPES
from lab.data.shapeworld import WorldDataset


def test_same_seed_same_bytes_and_splits_differ():
    a, b = WorldDataset("test", n=20), WorldDataset("test", n=20)
    assert all(a.source(i).tobytes() == b.source(i).tobytes() for i in range(20))
    v = WorldDataset("val", n=20)
    assert sum(a.source(i).tobytes() == v.source(i).tobytes() for i in range(20)) == 0
    assert a.sample(3).caption == b.sample(3).caption
    assert world.render(a.scene(0), 96)[0].size == (96, 96)


def test_attribute_coverage():
    labels = WorldDataset("test", n=600).labels
    assert set(labels["shape"]) == set(SHAPES) and len(SHAPES) >= 10
    assert set(labels.colour) == set(COLOURS) and len(COLOURS) >= 8
    assert set(labels["count"]) == {1, 2, 3, 4} and set(labels["size"]) == {"small", "medium", "large"}
    assert set(labels.position) - {"several"} == set(world.POSITIONS)
    assert set(labels["style"]) == set(world.STYLES)


def test_boxes_contain_masks_and_masks_hold_the_colour():
    ds = WorldDataset("test", n=60)
    for i in range(60):
        s = ds.sample(i)
        pixels = np.asarray(s.image, float)
        scene = ds.scene(i)
        assert len(s.masks) == len(s.boxes) == s.labels["count"]
        r = world.SIZES[scene.size] * 64 * 1.1 + 1  # every shape lies within 1.05 x its radius
        for k, (mask, (x0, y0, x1, y1)) in enumerate(zip(s.masks, s.boxes)):
            assert mask.shape == (64, 64) and mask.sum() > 0
            ys, xs = np.nonzero(mask)
            assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
            row, col = divmod(scene.cells[k], 3)  # the box sits where the scene put the object
            cx, cy = ((col + 0.5) / 3 + scene.jitter[k][0]) * 64, ((row + 0.5) / 3 + scene.jitter[k][1]) * 64
            assert cx - r <= x0 and x1 <= cx + r and cy - r <= y0 and y1 <= cy + r, (i, k)
            mean = pixels[mask].mean(0)
            assert np.abs(mean - np.array(scene.rgb)).max() < 45, (i, mean, scene.rgb)


def test_captions_agree_with_labels():
    ds = WorldDataset("test", n=300)
    for i in range(300):
        s = ds.sample(i)
        text = s.caption
        shape, colour = s.labels["shape"], s.labels["colour"]
        assert shape in text or SHAPE_SYNONYMS.get(shape, "@") in text
        assert colour in text or COLOUR_SYNONYMS.get(colour, "@") in text
        if s.labels["count"] > 1:
            assert COUNTS[s.labels["count"] - 1] in text.split()
    assert len({ds.sample(i).caption.split(" a")[0] for i in range(300)}) > 5  # several framings


def _mean_abs(a, b):
    return np.abs(np.asarray(a, float) - np.asarray(b, float)).mean()


def test_shift_suites_differ_as_documented():
    clean = WorldDataset("test", n=40)
    sketch = WorldDataset("test", n=40, suite="sketch")
    for i in range(40):
        px = np.asarray(sketch.source(i), int)
        assert (px.max(2) - px.min(2)).max() <= 2  # black strokes on white: no colour
        assert (px.min(2) > 250).mean() > 0.7
        assert sketch.labels["shape"][i] == clean.labels["shape"][i]  # same scene, drawn as a sketch
    rendition = WorldDataset("test", n=60, suite="rendition")
    assert set(rendition.labels["shape"]) <= set(SUBSET) and set(rendition.labels.render) == {"cartoon", "painting", "pattern"}
    assert rendition.classes == SUBSET
    objectnet = [scene_for("test", i, "objectnet") for i in range(60)]
    assert max(abs(a) for s in objectnet for a in s.angles) > np.radians(90)
    assert any(s.occluders for s in objectnet) and any(s.style == "clutter" for s in objectnet)
    v2 = WorldDataset("test", n=40, suite="v2")
    assert all(v2.source(i).tobytes() != clean.source(i).tobytes() for i in range(40))
    adv = WorldDataset("test", n=20, suite="adversarial")
    assert set(adv.labels["shape"]) <= set(SUBSET)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corruptions_grow_with_severity(name):
    clean = WorldDataset("test", n=8)
    diffs = []
    for sev in (1, 3, 5):
        ds = WorldDataset("test", n=8, suite="corruptions", corruption=name, severity=sev)
        diffs.append(np.mean([_mean_abs(ds.source(i), clean.source(i)) for i in range(8)]))
    assert 0 < diffs[0] < diffs[1] < diffs[2], diffs


def test_materialized_layout_reads_back(tmp_path, nano):
    ds = WorldDataset("test", n=30, suite="rendition")
    root = materialize(ds, tmp_path / "rendition")
    folder = ImageFolder(root)
    assert set(folder.classes) <= set(SUBSET) and len(folder) == 30
    by_name = {p.split("/")[-1]: folder.classes[l] for p, l in zip(folder.paths, folder.labels.label)}
    assert all(by_name[f"{i:06d}.png"] == ds.labels["shape"][i] for i in range(30))
    on_disk = nano.encode_images(folder, progress=False)
    order = [int(p.split("/")[-1][:6]) for p in folder.paths]
    np.testing.assert_allclose(on_disk, nano.encode_images(ds, progress=False)[order], atol=1e-6)
    assert isinstance(ds, lab.data.Dataset)
