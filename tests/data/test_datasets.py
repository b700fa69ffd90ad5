"""Dataset adapters on small on-disk fixtures in the real layouts, and the dataset registry."""
import numpy as np
import pytest

from conftest import write_images
from lab.data import prompts
from lab.data import ImageNet, dataset_identity, default_classnames, list_datasets, load_dataset
from lab.errors import BadInput


def _imagenet(root, wnids, per_class=3):
    for k, wnid in enumerate(wnids):
        write_images(root / "val" / wnid, per_class, size=(16, 16), seed=k)
    return root


def test_imagenet_val_layout_uses_standard_indices_and_curated_names(tmp_path):
    all_wnids = prompts.imagenet_wnids()
    chosen = [all_wnids[i] for i in (0, 657, 744, 999)]
    ds = ImageNet(_imagenet(tmp_path, chosen))
    assert len(ds) == 12 and len(ds.classes) == 1000
    assert sorted(set(ds.labels["label"])) == [0, 657, 744, 999]
    assert ds.classes[657] == ds.classes[744] == "missile"  # distinct labels despite one name
    assert set(ds.labels["wnid"]) == set(chosen)
    assert ImageNet(tmp_path / "val").labels["label"].tolist() == ds.labels["label"].tolist()  # root may be val/


def test_imagenet_errors_name_what_was_expected(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        ImageNet(tmp_path / "nowhere")
    write_images(tmp_path / "val" / "cats", 1)
    with pytest.raises(BadInput, match=r"one folder per WNID.*'cats'"):
        ImageNet(tmp_path)


def test_real_dataset_halves_are_disjoint_and_seeded(tmp_path):
    root = _imagenet(tmp_path, prompts.imagenet_wnids()[:4], per_class=5)
    val = load_dataset("imagenet", str(root), "val", seed=1)
    test = load_dataset("imagenet", str(root), "test", seed=1)
    a, b = set(val.labels["path"]), set(test.labels["path"])
    assert not a & b and len(a | b) == 20
    assert set(load_dataset("imagenet", str(root), "test", seed=2).labels["path"]) != b
    assert len(load_dataset("imagenet", str(root), "test", n=4, seed=1)) == 4
    assert dataset_identity(test) != dataset_identity(val)
    names, alt = default_classnames("imagenet", test)
    assert names[0] == "tench" and alt[0] == "tench" and len(alt) == 1000


def test_folder_dataset_and_registry_errors(tmp_path):
    for c in ("ant", "bee"):
        write_images(tmp_path / c, 4, size=(16, 16))
    ds = load_dataset("folder", str(tmp_path), "all")
    assert ds.classes == ["ant", "bee"] and len(ds) == 8
    assert np.bincount(ds.labels["label"]).tolist() == [4, 4]
    assert default_classnames("folder", ds) == (["ant", "bee"], None)
    with pytest.raises(BadInput, match="needs data_root"):
        load_dataset("imagenet")
    with pytest.raises(BadInput, match="shapeworld-rendition"):
        load_dataset("shapeworld-renditions")


def test_shapeworld_suites_by_name():
    assert {"shapeworld", "shapeworld-rendition", "imagenet", "folder"} <= set(list_datasets())
    ds = load_dataset("shapeworld-rendition", split="val", n=30)
    names, alt = default_classnames("shapeworld-rendition", ds)
    assert len(names) == 6 and names == ds.classes and len(alt) == 6
    assert ds.labels["label"].between(0, 5).all()
