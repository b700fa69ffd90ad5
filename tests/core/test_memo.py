"""Memoized results (lab.core.memo): attribution maps, deletion/insertion curves and baseline predictions
come back from the cache folder on a repeat (proved by editing the stored file), are recomputed when
the model, the inputs or a parameter change, and a cache that cannot be written only costs time."""
import warnings

import numpy as np
import pytest

from conftest import count_forward
from lab.studies import attribution as at
from lab.studies import attribution_metrics as am
from lab.core import memo
from lab.studies import robustness as rb
from lab.data.shapeworld import WorldDataset

TEXTS = ["a red circle", "a blue square"]


@pytest.fixture(scope="module")
def images():
    ds = WorldDataset("test", 4)
    return [ds.source(i) for i in range(4)]


def stored(folder, pattern):
    return sorted(folder.glob(pattern))


def test_maps_hit_reads_the_file_and_runs_no_forward_pass(nano, images, tmp_path):
    folder = tmp_path / "memo"
    first = at.attribute(nano, images[:3], TEXTS, method="rollout", cache=folder)
    files = stored(folder / "attribution", "maps-*.npz")
    assert len(files) == 1
    with np.load(files[0]) as z:  # what a hit will read: edit it
        edited = {k: z[k] for k in z.files}
    edited["maps"] = np.full_like(edited["maps"], 0.25)
    memo.atomic_save(files[0], **edited)
    seen = count_forward(nano)
    again = at.attribute(nano, images[:3], TEXTS, method="rollout", cache=folder)
    assert seen == {"images": 0, "texts": 0}  # nothing recomputed
    assert (again.maps == 0.25).all() and again.method == "rollout" and again.texts == TEXTS
    np.testing.assert_array_equal(again.scores, first.scores)
    np.testing.assert_array_equal(again.views, first.views)


def test_maps_miss_on_changed_inputs_parameters_or_model(nano, images, tmp_path):
    import lab
    folder = tmp_path / "memo"
    base = at.attribute(nano, images[:2], TEXTS, method="random", cache=folder, seed=1)
    variants = [dict(method="rollout"), dict(seed=2), dict(labels=[1, 0]), dict(target="softmax")]
    for change in variants:
        at.attribute(nano, images[:2], TEXTS, **{"method": "random", "seed": 1, **change}, cache=folder)
    at.attribute(nano, images[:2], TEXTS[::-1], method="random", seed=1, cache=folder)  # other texts
    at.attribute(nano, images[1:3], TEXTS, method="random", seed=1, cache=folder)  # other images
    assert len(stored(folder / "attribution", "maps-*.npz")) == 7
    other = lab.load_model("lab-vit-tiny", device="cpu")  # other weights (same precision): other entry, its own maps
    r = at.attribute(other, images[:2], TEXTS, method="rollout", cache=folder)
    assert len(stored(folder / "attribution", "maps-*.npz")) == 8 and r.maps.shape[-1] == 64 != base.maps.shape[-1]
    again = at.attribute(nano, images[:2], TEXTS, method="random", seed=1, cache=folder)
    np.testing.assert_array_equal(again.maps, base.maps)


def test_image_files_are_keyed_by_their_content(nano, images, tmp_path):
    paths = []
    for i, im in enumerate(images[:2]):
        paths.append(tmp_path / f"{i}.png")
        im.save(paths[-1])
    folder = tmp_path / "memo"
    first = at.attribute(nano, paths, TEXTS, method="rollout", cache=folder)
    images[2].save(paths[0])  # same path, new picture: recomputed
    second = at.attribute(nano, paths, TEXTS, method="rollout", cache=folder)
    assert len(stored(folder / "attribution", "maps-*.npz")) == 2
    assert not np.array_equal(first.views[0], second.views[0])


def test_deletion_insertion_hit_and_miss(nano, images, tmp_path):
    folder = tmp_path / "memo"
    maps = at.attribute(nano, images, TEXTS, method="random", labels=[0, 1, 0, 1], cache=False).maps[:, 0]
    d, i = am.deletion_insertion(nano, images, maps, TEXTS, [0, 1, 0, 1], steps=4, cache=folder)
    np.testing.assert_allclose((d, i), am.deletion_insertion(nano, images, maps, TEXTS, [0, 1, 0, 1], steps=4,
                                                             cache=False))
    file, = stored(folder / "attribution", "deletion_insertion-*.npz")
    memo.atomic_save(file, deletion=d + 1, insertion=i)
    seen = count_forward(nano)
    d2, _ = am.deletion_insertion(nano, images, maps, TEXTS, [0, 1, 0, 1], steps=4, cache=folder)
    assert seen["images"] == 0 and np.allclose(d2, d + 1)
    am.deletion_insertion(nano, images, maps, TEXTS, [0, 1, 0, 1], steps=3, cache=folder)  # other steps
    am.deletion_insertion(nano, images, maps[::-1], TEXTS, [0, 1, 0, 1], steps=4, cache=folder)  # other maps
    assert len(stored(folder / "attribution", "deletion_insertion-*.npz")) == 3 and seen["images"] > 0


def test_a_cache_that_cannot_be_written_only_costs_recomputation(nano, images, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would be")  # mkdir fails, even for root
    expected = at.attribute(nano, images[:2], TEXTS, method="rollout", cache=False)
    with pytest.warns(UserWarning, match="could not cache maps"):
        r = at.attribute(nano, images[:2], TEXTS, method="rollout", cache=blocked)
    np.testing.assert_array_equal(r.maps, expected.maps)


def test_an_unreadable_file_is_recomputed(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(3)}
    assert memo.memoized("t", [1], compute, tmp_path, kind="npz")["x"].tolist() == [0, 1, 2]
    file, = stored(tmp_path / "results", "t-*.npz")
    file.write_bytes(b"not a zip")
    with pytest.warns(UserWarning, match="unreadable cache file"):
        assert memo.memoized("t", [1], compute, tmp_path, kind="npz")["x"].tolist() == [0, 1, 2]
    assert len(calls) == 2 and memo.memoized("t", [1], compute, tmp_path, kind="npz")["x"].tolist() == [0, 1, 2]
    assert len(calls) == 2  # the rewritten file is read
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert memo.memoized("t", [print], compute, tmp_path, kind="npz")  # no stable key: computed, not cached
    assert len(calls) == 3


def test_baseline_predictions_are_cached_and_the_classifier_is_built_once(tmp_path):
    folder = tmp_path / "memo"
    sets = {"a": WorldDataset("test", 20), "b": WorldDataset("val", 10)}
    built = []

    def factory():
        built.append(1)
        return lambda ds: np.tile(np.arange(5), (len(ds), 1))
    clf = rb.memoized_classifier("fake", ["fake", 1], factory, folder)
    assert clf(sets["a"]).shape == (20, 5) and clf(sets["b"]).shape == (10, 5) and built == [1]
    file = next(f for f in stored(folder / "robustness", "predictions-*.npz") if len(np.load(f)["top"]) == 10)
    memo.atomic_save(file, top=np.full((10, 5), 3))
    again = rb.memoized_classifier("fake", ["fake", 1], factory, folder)
    assert (again(sets["b"]) == 3).all() and again(sets["a"]).shape == (20, 5) and built == [1]  # never built
    rb.memoized_classifier("fake", ["fake", 2], factory, folder)(sets["a"])  # other parameters: built, computed
    assert built == [1, 1] and len(stored(folder / "robustness", "predictions-*.npz")) == 3


def test_linear_probe_baseline_equals_the_direct_fit_and_is_not_refitted(nano, monkeypatch):
    train, val, test = WorldDataset("train", 200), WorldDataset("val", 500), WorldDataset("test", 40)
    kind, probe = rb.world_classifiers([nano], cnn_baselines=(), n_train=200)[f"{nano.name} linear probe"]
    assert kind == "baseline"
    np.testing.assert_array_equal(probe(test), rb.linear_probe(nano, train, val)(test))

    def refit(*a, **k):
        raise AssertionError("refitted although its predictions are cached")
    monkeypatch.setattr(rb, "linear_probe", refit)
    _, again = rb.world_classifiers([nano], cnn_baselines=(), n_train=200)[f"{nano.name} linear probe"]
    np.testing.assert_array_equal(again(test), probe(test))


def test_world_targets_come_back_as_computed(nano, tmp_path):
    ds = WorldDataset("test", 6)
    masks, boxes = am.world_targets(nano, ds, range(6), cache=tmp_path)
    file, = stored(tmp_path / "attribution", "world_targets-*.npz")
    again_masks, again_boxes = am.world_targets(nano, ds, range(6), cache=tmp_path)
    fresh_masks, fresh_boxes = am.world_targets(nano, ds, range(6), cache=False)
    assert again_boxes == boxes == fresh_boxes and all(isinstance(b, tuple) for bs in boxes for b in bs)
    np.testing.assert_array_equal(again_masks, fresh_masks)
    am.world_targets(nano, ds, [0, 2], cache=tmp_path)  # other items, other entry
    assert len(stored(tmp_path / "attribution", "world_targets-*.npz")) == 2 and file.exists()
