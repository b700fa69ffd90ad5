"""Shift adapters on small on-disk fixtures in each real layout (the ImageNetV2 integer-folder trap,
ImageNet-R/-A class subsets, the ObjectNet mapping), the class-subset logic, intervals and the
logit fit against hand-computed cases, notebook 04 through papermill, and the dashboard."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import write_images
from lab.data import prompts
from lab.studies import robustness as rb
from lab.studies.stats import bootstrap_band, clopper_pearson, fit_line
from lab.data.shapeworld import ClassSubset, world_shift_sets
from lab.data import shifts
from lab.data.shifts import real_shift_sets
from lab.errors import BadInput


def test_imagenet_v2_folders_are_class_indices_not_sort_ranks(tmp_path):
    for k in ("0", "1", "2", "10", "100"):
        write_images(tmp_path / k, 2, size=(16, 16))
    ds = shifts.ImageNetV2(tmp_path)
    by_folder = {Path(p).parent.name: label for p, label in zip(ds.labels["path"], ds.labels["label"])}
    assert by_folder == {"0": 0, "1": 1, "2": 2, "10": 10, "100": 100}  # sorted as strings, "2" would be 4th
    assert len(ds.classes) == 1000 and ds.classes[100] == prompts.classnames("imagenet")[100]
    write_images(tmp_path / "n01440764", 1)
    with pytest.raises(BadInput, match="folders named 0..999"):
        shifts.ImageNetV2(tmp_path)


def test_imagenet_r_and_a_use_their_200_classes_and_the_matching_val_subset(tmp_path):
    r = shifts.imagenet_r_wnids()
    assert len(r) == 200 and len(shifts.imagenet_a_wnids()) == 200 and r == sorted(r)
    for w in (r[0], r[57], r[199]):
        write_images(tmp_path / "imagenet-r" / w, 2, size=(16, 16))
    ds = shifts.ImageNetR(tmp_path)
    assert len(ds.classes) == 200 and sorted(set(ds.labels["label"])) == [0, 57, 199]
    full = prompts.imagenet_wnids()
    assert ds.classes[57] == prompts.classnames("imagenet")[full.index(r[57])]
    outside = next(w for w in full if w not in r)
    for w in (r[57], outside):  # val holds an extra class outside ImageNet-R: skipped
        write_images(tmp_path / "val" / w, 3, size=(16, 16))
    val = shifts.imagenet_subset_val(tmp_path, r)
    assert val.classes == ds.classes and set(val.labels["label"]) == {57} and len(val) == 3


def _objectnet(root: Path) -> Path:
    base = root / "objectnet-1.0"
    (base / "mappings").mkdir(parents=True)
    (base / "mappings" / "folder_to_objectnet_label.json").write_text(json.dumps(
        {"alarm_clock": "Alarm clock", "banana": "Banana", "chair": "Chair"}))
    (base / "mappings" / "objectnet_to_imagenet_1k.json").write_text(json.dumps(
        {"Alarm clock": "analog clock; digital clock", "Banana": "banana"}))  # chair: no ImageNet class
    # 2012 ids are not PyTorch's indices: 5 -> 409, 7 -> 530, 9 -> 954
    (base / "mappings" / "pytorch_to_imagenet_2012_id.json").write_text(json.dumps({"409": 5, "530": 7, "954": 9}))
    lines = ["unused"] * 10
    lines[5], lines[7], lines[9] = "analog clock", "digital clock", "banana"
    (base / "mappings" / "imagenet_to_label_2012_v2").write_text("\n".join(lines) + "\n")
    for folder in ("alarm_clock", "banana", "chair"):
        write_images(base / "images" / folder, 2, size=(20, 24), ext="png")
    return root


def test_objectnet_mapping_border_and_scoring(tmp_path):
    ds = shifts.ObjectNet(_objectnet(tmp_path))
    assert ds.classes == [prompts.classnames("imagenet")[i] for i in (409, 530, 954)]
    assert len(ds) == 4 and set(ds.labels["folder"]) == {"alarm_clock", "banana"}  # chair is not mapped
    correct = dict(zip(ds.labels["folder"], ds.labels["correct"]))
    assert correct == {"alarm_clock": (0, 1), "banana": (2,)}
    assert ds.source(0).size == (24 - 4, 20 - 4)  # 2-px border cropped on every side (PIL: width, height)
    top = np.array([[1, 0], [0, 2], [0, 1], [2, 0]])  # alarm clock: digital clock counts; banana: only banana
    order = ds.labels["folder"].tolist()
    expected = [p in correct[f] for p, f in zip(top[:, 0], order)]
    assert rb.score(top, ds.labels)["top1"] == pytest.approx(np.mean(expected))
    (tmp_path / "objectnet-1.0" / "mappings" / "imagenet_to_label_2012_v2").unlink()
    with pytest.raises(BadInput, match="imagenet_to_label_2012_v2"):
        shifts.ObjectNet(tmp_path)


def test_imagenet_c_layout(tmp_path):
    w = prompts.imagenet_wnids()[3]
    for corruption, severity in (("gaussian_noise", 1), ("gaussian_noise", 5), ("fog", 3)):
        write_images(tmp_path / corruption / str(severity) / w, 1, size=(16, 16))
    sets = shifts.imagenet_c(tmp_path)
    assert sorted(sets) == [("fog", 3), ("gaussian_noise", 1), ("gaussian_noise", 5)]
    assert sets[("fog", 3)].labels["label"].tolist() == [3]


def test_class_subset_relabels_like_the_shift():
    from lab.data.suites import SUBSET
    from lab.data.shapeworld import WorldDataset
    clean = WorldDataset("test", 100)
    sub = ClassSubset(clean, SUBSET)
    names = [clean.classes[k] for k in clean.labels["label"]]
    assert len(sub) == sum(n in SUBSET for n in names)
    assert [sub.classes[k] for k in sub.labels["label"]] == [n for n in names if n in SUBSET]
    assert sub.content_key(0) == clean.content_key(int(sub.indices[0]))


def test_intervals_and_the_logit_fit_by_hand():
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0 and hi == pytest.approx(1 - 0.025 ** (1 / 10))
    lo, hi = clopper_pearson(5, 10)
    assert lo == pytest.approx(0.187086, abs=1e-5) and hi == pytest.approx(0.812914, abs=1e-5)
    x = np.array([0.2, 0.5, 0.8, 0.9])
    y = 1 / (1 + np.exp(-(0.5 * np.log(x / (1 - x)) - 0.3)))  # exactly on logit(y) = 0.5 logit(x) - 0.3
    a, b = fit_line(x, y)
    assert a == pytest.approx(0.5) and b == pytest.approx(-0.3)
    # a model at ID 50 % and shift 60 %: the line predicts sigmoid(-0.3) = 42.56 %, so ER = +17.44 points
    assert rb.effective_robustness(0.5, 0.6, a, b) == pytest.approx(0.6 - 1 / (1 + np.exp(0.3)))
    band_lo, band_hi = bootstrap_band(x, y, np.array([0.3, 0.7]), n_boot=50)
    assert np.allclose(band_lo, band_hi)  # points exactly on a line: every resample fits the same line
    with pytest.raises(ValueError, match="two baselines"):
        fit_line([0.5, 0.5], [0.3, 0.4])


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    import lab
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAB_CACHE_DIR", str(tmp_path_factory.mktemp("rob-cache")))
        sets, pairs, _ = world_shift_sets(60, corruptions=[])
        classifiers = rb.world_classifiers([lab.load_model("lab-vit-tiny", device="cpu")],
                                           cnn_baselines=((8, 1), (16, 6)), linear_probes=False, n_train=300)
        table, predictions = rb.run_suite(classifiers, sets)
    return {"sets": sets, "pairs": pairs, "table": table, "predictions": predictions}


def test_suite_table_and_effective_robustness(small_study):
    table, pairs = small_study["table"], small_study["pairs"]
    assert pairs["rendition"] == "clean (6 classes)" and pairs["v2"] == "clean"
    assert set(table["model"]) == {"lab-vit-tiny", "CNN w8, 1 epochs", "CNN w16, 6 epochs"}
    assert table["top1"].between(0, 1).all() and (table["top1_low"] <= table["top1"]).all()
    er = rb.er_table(table, pairs)
    # by hand: the line through the two CNNs' smoothed (ID, v2) accuracies, then the CLIP's distance above it
    acc = table.set_index(["model", "shift"])
    fit = lambda m, s: (acc.loc[(m, s), "top1"] * acc.loc[(m, s), "n"] + 0.5) / (acc.loc[(m, s), "n"] + 1)  # noqa
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    cnns = ["CNN w8, 1 epochs", "CNN w16, 6 epochs"]
    (x0, x1), (y0, y1) = ([logit(fit(m, s)) for m in cnns] for s in ("clean", "v2"))
    slope = (y1 - y0) / (x1 - x0)
    line = y0 + slope * (logit(fit("lab-vit-tiny", "clean")) - x0)
    row = er[(er["model"] == "lab-vit-tiny") & (er["shift"] == "v2")].iloc[0]
    assert row["slope"] == pytest.approx(slope)
    assert row["effective_robustness"] == pytest.approx(acc.loc[("lab-vit-tiny", "v2"), "top1"] - 1 / (1 + np.exp(-line)))


def test_dashboard_updates_and_inspects(small_study):
    from widgets.robustness_dashboard import RobustnessDashboard
    d = RobustnessDashboard(results=small_study)
    names = {t.name for t in d.er.data}
    assert {"lab-vit-tiny", "baselines' line"} <= names
    d.shift_box.value = "rendition"
    assert "rendition" in d.er.layout.title.text and {t.x[0] for t in d.bars.data} <= {"rendition", "clean (6 classes)"}
    d.models_box.value = ("lab-vit-tiny", "CNN w8, 1 epochs")
    assert "baselines' line" not in {t.name for t in d.er.data}  # one baseline left: no line to fit
    star = next(t for t in d.er.data if t.name == "lab-vit-tiny")
    from plotly.callbacks import Points
    star._dispatch_on_click(Points(point_inds=[0], trace_index=0), None)
    assert d.selected is not None and "worst-hit classes" in d.detail.value
    assert list(d.selected.columns) == ["id_top1", "shift_top1", "drop"]
    d.shift_box.value = "v2"
    assert d.selected is None and d.detail.value == ""  # details of another view are cleared


def test_notebook_runs_through_papermill(tmp_path, monkeypatch):
    from lab.report import run_report
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    nb = Path(__file__).parents[2] / "notebooks" / "04_robustness.ipynb"
    params = {"models": ["lab-vit-tiny"], "n_per_shift": 60, "corruptions": ["contrast"], "n_corrupted": 20,
              "cnn_baselines": [[8, 1], [16, 6]], "linear_probes": False, "n_probe_train": 300, "device": "cpu"}
    entry = run_report([nb], params, {}, tmp_path / "out", progress=False)["notebooks"][0]
    assert entry["status"] == "ok", entry.get("error")
    er = pd.read_csv(tmp_path / "out" / "04_robustness" / "effective_robustness.csv")
    assert set(er["shift"]) == {"v2", "sketch", "rendition", "adversarial", "objectnet"}
    assert "lab-vit-tiny/v2/effective_robustness" in entry["run"]["results"]


def test_objectnet_is_compared_with_val_over_its_classes(tmp_path):
    root = _objectnet(tmp_path / "on")
    full = prompts.imagenet_wnids()
    for i in (409, 954, 0):  # two of ObjectNet's mapped classes and one outside them
        write_images(tmp_path / "imagenet" / "val" / full[i], 1, size=(16, 16))
    sets, pairs = real_shift_sets({"imagenet": tmp_path / "imagenet", "objectnet": root})
    ident = sets[pairs["objectnet"]]
    assert pairs["objectnet"] == "imagenet (objectnet classes)" and ident.classes == sets["objectnet"].classes
    assert sorted(ident.labels["label"]) == [0, 2]  # analog clock and banana, relabelled like ObjectNet


def test_real_data_notebook_path(tmp_path, monkeypatch):
    from lab.report import run_report
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    full = prompts.imagenet_wnids()
    for i in (1, 2):
        write_images(tmp_path / "imagenet" / "val" / full[i], 3, size=(32, 32), seed=i)
        write_images(tmp_path / "imagenet" / "train" / full[i], 6, size=(32, 32), seed=20 + i)
        write_images(tmp_path / "v2" / str(i), 2, size=(32, 32), seed=10 + i)
    nb = Path(__file__).parents[2] / "notebooks" / "04_robustness.ipynb"
    params = {"models": ["lab-vit-tiny"], "templates": "name-only", "n_probe_train": 100,
              "roots": {"imagenet": str(tmp_path / "imagenet"), "imagenetv2": str(tmp_path / "v2")},
              "probe_train_root": str(tmp_path / "imagenet" / "train"), "device": "cpu"}
    entry = run_report([nb], params, {}, tmp_path / "out", progress=False)["notebooks"][0]
    assert entry["status"] == "ok", entry.get("error")
    table = pd.read_csv(tmp_path / "out" / "04_robustness" / "accuracy.csv")
    assert set(table["shift"]) == {"imagenet", "imagenetv2"} and set(table["n"]) == {6, 4}
    assert set(table["model"]) == {"lab-vit-tiny", "lab-vit-tiny linear probe"}  # the probe saw 2 of 1000 classes


def test_real_shift_sets_pair_each_shift_with_its_in_distribution_set(tmp_path):
    full, r = prompts.imagenet_wnids(), shifts.imagenet_r_wnids()
    for w in (r[0], r[1], next(x for x in full if x not in r)):
        write_images(tmp_path / "imagenet" / "val" / w, 2, size=(16, 16))
    write_images(tmp_path / "imagenet-r" / r[1], 2, size=(16, 16))
    for k in ("3", "12"):
        write_images(tmp_path / "v2" / k, 1, size=(16, 16))
    sets, pairs = real_shift_sets({"imagenet": tmp_path / "imagenet", "imagenet_r": tmp_path,
                                      "imagenetv2": tmp_path / "v2"})
    assert pairs == {"imagenet_r": "imagenet (imagenet_r classes)", "imagenetv2": "imagenet"}
    assert len(sets["imagenet"]) == 6 and len(sets["imagenet (imagenet_r classes)"]) == 4
    assert sets["imagenet_r"].classes == sets["imagenet (imagenet_r classes)"].classes
    ref = rb.reference_points()
    assert {"imagenet", "imagenetv2", "imagenet_r", "objectnet", "imagenet_sketch", "imagenet_a"} <= set(ref.columns)
    published = rb.reference_er_points("imagenet_r")
    assert (published["kind"] == "published").all() and published["shift_top1"].tolist() == [0.889, 0.377]
    from figures.robustness import effective_robustness_plot
    fig = effective_robustness_plot(published, "imagenet_r")
    assert {t.name for t in fig.data} >= set(published["model"])
    with pytest.raises(ValueError, match="roots\\['imagenet'\\]"):
        real_shift_sets({"imagenetv2": tmp_path / "v2"})


def test_class_drops_per_shift_agree_with_worst_classes():
    from types import SimpleNamespace
    classes = ["a", "b", "c"]
    ident = SimpleNamespace(labels=pd.DataFrame({"label": [0, 0, 1, 1, 2, 2]}), classes=classes)
    shifted = SimpleNamespace(labels=pd.DataFrame({"label": [0, 0, 1, 1, 2, 2]}), classes=classes)
    predictions = {("m", "clean"): np.array([[0], [0], [1], [1], [2], [0]]),   # a 1.0, b 1.0, c 0.5
                   ("m", "shift"): np.array([[0], [1], [0], [0], [2], [0]])}   # a 0.5, b 0.0, c 0.5
    sets, pairs = {"clean": ident, "shift": shifted}, {"shift": "clean"}
    drops = rb.class_drops(predictions, sets, pairs, "m", top=2)
    assert list(drops.index) == ["b", "a"] and drops["shift"].tolist() == [1.0, 0.5]  # c does not change
    worst = rb.worst_classes(predictions, sets, pairs, "m", "shift", k=2)
    assert worst["drop"].tolist() == drops["shift"].tolist()
