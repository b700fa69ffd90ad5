"""Public functions that had no test of their own, each against a reference (scipy, scikit-learn,
a hand-worked case or a direct forward pass): Wilson intervals, the linear probe and its class
restriction, per-class accuracy, worst classes, the bootstrap band, the ImageNet-Sketch / -A
layouts, per-template probabilities, per-notebook report parameters and the CLI's options."""
import json
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy import stats
from scipy.special import softmax

import lab
from lab import cli
from lab.data import prompts
from lab.studies import zeroshot
from lab.studies import robustness as rb
from lab.studies.stats import bootstrap_band, fit_line, predicted
from lab.data.shapeworld import ClassSubset
from lab.data import shifts
from lab.errors import BadInput
from lab.studies.stats import wilson_interval

from conftest import NANO, write_images


def test_wilson_interval_equals_scipy():
    k, n = np.array([0, 3, 50, 97, 40]), np.array([20, 10, 100, 97, 1000])
    lo, hi = wilson_interval(k / n, n, z=stats.norm.ppf(0.975))
    for i in range(len(k)):
        ref = stats.binomtest(int(k[i]), int(n[i])).proportion_ci(0.95, method="wilson")
        assert (lo[i], hi[i]) == pytest.approx((ref.low, ref.high), abs=1e-9)


# -- robustness -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vit():
    return lab.load_model("lab-vit-tiny", device="cpu")


def test_linear_probe_equals_scikit_learn_and_restricts_classes_by_name(vit, tmp_path_factory):
    from sklearn.linear_model import LogisticRegression

    from lab.data.suites import SUBSET
    from lab.data.shapeworld import WorldDataset
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAB_CACHE_DIR", str(tmp_path_factory.mktemp("probe-cache")))
        train, val, test = WorldDataset("train", 150), WorldDataset("val", 60), WorldDataset("test", 80)
        Cs = (0.01, 1.0, 100.0)
        probe = rb.linear_probe(vit, train, val, Cs=Cs)
        xt, xv, xs = (vit.encode_images(d, progress=False) for d in (train, val, test))
        sub = ClassSubset(test, SUBSET)
        top_all, top_sub = probe(test), probe(sub)
    yt, yv = train.labels["label"].to_numpy(), val.labels["label"].to_numpy()
    fits = {C: LogisticRegression(C=C, max_iter=2000).fit(xt, yt) for C in Cs}
    acc = {C: (f.predict(xv) == yv).mean() for C, f in fits.items()}
    best = max(Cs, key=lambda C: (acc[C], -Cs.index(C)))  # the first of the best
    assert probe.C == best and probe.val_top1 == pytest.approx(acc[best])
    assert len(set(acc.values())) > 1  # the choice of C is not vacuous
    clf = fits[best]
    assert list(clf.classes_) == list(range(len(train.classes)))
    decision = clf.decision_function(xs)  # (N, C)
    np.testing.assert_array_equal(top_all[:, 0], decision.argmax(1))
    expected = float((decision.argmax(1) == test.labels["label"].to_numpy()).mean())
    assert rb.score(top_all, test.labels)["top1"] == pytest.approx(expected) and expected > 0.5
    cols = [list(train.classes).index(c) for c in sub.classes]  # the subset's classes, found by name
    assert cols != list(range(len(cols)))
    np.testing.assert_array_equal(top_sub[:, 0], decision[sub.indices][:, cols].argmax(1))


def _set(labels, classes):
    return SimpleNamespace(labels=pd.DataFrame({"label": labels}), classes=classes)


def test_per_class_accuracy_by_hand():
    ds = _set([0, 0, 1, 1, 1, 3], ["cat", "dog", "missile", "missile"])
    top = np.array([[0, 1], [1, 0], [1, 0], [-1, -1], [0, 1], [3, 0]])  # row 3 failed: it does not count
    acc = rb.per_class_accuracy(top, ds)
    assert list(acc.index) == ["cat", "dog", "missile (2)", "missile (3)"]  # repeated names keep their index
    assert acc["cat"] == 0.5 and acc["dog"] == 0.5 and np.isnan(acc["missile (2)"]) and acc["missile (3)"] == 1.0


def test_worst_classes_by_hand():
    classes = ["a", "b", "c"]
    clean, shifted = _set([0, 0, 1, 1, 2, 2], classes), _set([0, 0, 1, 1, 2, 2], classes)
    predictions = {("m", "clean"): np.array([[0], [0], [1], [1], [2], [0]]),  # a 1.0, b 1.0, c 0.5
                   ("m", "shift"): np.array([[0], [1], [0], [0], [2], [1]])}  # a 0.5, b 0.0, c 0.5
    worst = rb.worst_classes(predictions, {"clean": clean, "shift": shifted}, {"shift": "clean"}, "m", "shift", k=2)
    assert list(worst.index) == ["b", "a"] and worst["drop"].tolist() == [1.0, 0.5]
    assert worst.loc["b", "id_top1"] == 1.0 and worst.loc["b", "shift_top1"] == 0.0


def test_bootstrap_band_on_scattered_baselines_equals_a_direct_resampling():
    x = np.array([0.3, 0.45, 0.6, 0.7, 0.85, 0.9])
    y = np.array([0.2, 0.25, 0.45, 0.4, 0.7, 0.65])  # not on a line: resamples fit different lines
    grid = np.array([0.4, 0.6, 0.8])
    lo, hi = bootstrap_band(x, y, grid, n_boot=300, seed=3, level=0.9)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    rng, lines = np.random.default_rng(3), []
    for _ in range(300):
        i = rng.integers(0, len(x), len(x))
        if len(set(x[i])) > 1:
            a, b = np.polyfit(logit(x[i]), logit(y[i]), 1)
            lines.append(1 / (1 + np.exp(-(a * logit(grid) + b))))
    np.testing.assert_allclose(lo, np.quantile(lines, 0.05, axis=0), rtol=1e-9)
    np.testing.assert_allclose(hi, np.quantile(lines, 0.95, axis=0), rtol=1e-9)
    fit = predicted(grid, *fit_line(x, y))
    assert (lo < fit).all() and (fit < hi).all() and (hi - lo).min() > 0.02


# -- real-data layouts ------------------------------------------------------------------------------

def test_imagenet_sketch_layout_with_or_without_the_sketch_folder(tmp_path):
    wnids = prompts.imagenet_wnids()
    write_images(tmp_path / "a" / "sketch" / wnids[5], 2, size=(16, 16))
    write_images(tmp_path / "a" / "sketch" / wnids[999], 1, size=(16, 16))
    write_images(tmp_path / "b" / wnids[7], 1, size=(16, 16))
    a, b = shifts.ImageNetSketch(tmp_path / "a"), shifts.ImageNetSketch(tmp_path / "b")
    assert a.labels["label"].tolist() == [5, 5, 999] and b.labels["label"].tolist() == [7]
    assert a.classes == prompts.classnames("imagenet")
    write_images(tmp_path / "b" / "drawings", 1, size=(16, 16))
    with pytest.raises(BadInput, match="one folder per WNID"):
        shifts.ImageNetSketch(tmp_path / "b")


def test_imagenet_a_layout_uses_its_200_classes(tmp_path):
    a, full = shifts.imagenet_a_wnids(), prompts.imagenet_wnids()
    assert a != shifts.imagenet_r_wnids()
    for w in (a[0], a[120], a[199]):
        write_images(tmp_path / "imagenet-a" / w, 1, size=(16, 16))
    ds = shifts.ImageNetA(tmp_path)
    assert len(ds.classes) == 200 and ds.labels["label"].tolist() == [0, 120, 199]
    assert ds.classes[120] == prompts.classnames("imagenet")[full.index(a[120])]
    write_images(tmp_path / "imagenet-a" / next(w for w in full if w not in a), 1, size=(16, 16))
    with pytest.raises(BadInput, match="one folder per WNID"):
        shifts.ImageNetA(tmp_path)


# -- zero-shot on one image -------------------------------------------------------------------------

def test_classify_image_per_template_probabilities_by_hand(nano):
    names = ["cat", "dog", "eel", "owl", "fox"]
    temps = ["a photo of a {}.", "a drawing of a {}.", "{}", "itap of the {}.", "a {} in the snow."]
    m = nano.module
    with torch.no_grad():
        t = m.encode_text(nano.tokenizer([tp.format(c) for c in names for tp in temps])).numpy()
    t = (t / np.linalg.norm(t, axis=1, keepdims=True)).reshape(len(names), len(temps), -1)  # (C, T, D)
    w = t.mean(1)
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    disagreements = 0
    for seed in range(4):
        image = np.random.default_rng(seed).integers(0, 256, (40, 40, 3), dtype=np.uint8)
        classes, per_template = zeroshot.classify_image(nano, image, names, temps)
        with torch.no_grad():
            x = m.encode_image(nano.preprocess(Image.fromarray(image))[None])[0]
        x = (x / x.norm()).numpy()
        ens = softmax(nano.logit_scale * w @ x)
        assert classes["name"].tolist() == [names[i] for i in np.argsort(-ens)]
        np.testing.assert_allclose(classes["probability"], np.sort(ens)[::-1], atol=1e-5)
        top = int(ens.argmax())
        for k, template in enumerate(temps):
            p = softmax(nano.logit_scale * t[:, k] @ x)  # (C,) this template alone
            row = per_template.iloc[k]
            assert row["template"] == template and row["predicted"] == names[int(p.argmax())]
            assert row["probability"] == pytest.approx(p.max(), abs=1e-5)
            assert row["p(ensemble top)"] == pytest.approx(p[top], abs=1e-5)
            disagreements += int(p.argmax()) != top
    assert disagreements >= 2  # some templates pick another class than the ensemble: the columns differ


# -- the report and the command line ------------------------------------------------------------------

def _notebook(folder: Path, stem: str, check: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("x: int = 1  # a number\nlabel: str = 'none'  # a word")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(check)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / f"{stem}.ipynb"
    nbformat.write(nb, path)
    return path


def test_report_parameters_from_the_command_line_and_per_notebook(tmp_path, capsys):
    a = _notebook(tmp_path, "01_a", "assert x == 3 and label == 'from -p', (x, label)")
    b = _notebook(tmp_path, "02_b", "assert x == 7 and label == 'from -p', (x, label)")
    config = tmp_path / "report.yaml"
    config.write_text("parameters: {x: 5, label: from config}\nnotebook_parameters: {02_b: {x: 7}}\n")
    code = cli.main(["report", "--config", str(config), "--notebooks", str(a), str(b), "-p", "x", "3",
                     "-p", "label", "from -p", "--out", str(tmp_path / "r"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out  # -p over the config's parameters, a notebook's own parameters over both
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert [e["parameters"]["x"] for e in manifest["notebooks"]] == [3, 7]


def test_cli_encodes_world_images_row_by_row(tmp_path, capsys):
    from lab.data.shapeworld import WorldDataset
    out = tmp_path / "w.npy"
    assert cli.main(["encode", "--world", "test:5", "--model", "lab-vit-tiny", "--device", "cpu",
                     "--out", str(out)]) == 0
    emb, index = np.load(out), pd.read_csv(tmp_path / "w.index.csv")
    ds = WorldDataset("test", 5)
    api = lab.load_model("lab-vit-tiny", device="cpu").encode_images(ds, cache=False, progress=False)
    position = {ds.content_key(i): i for i in range(len(ds))}
    assert sorted(position[k] for k in index["item"]) == list(range(5))
    for row, item in zip(index["row"], index["item"]):
        np.testing.assert_allclose(emb[row], api[position[item]], atol=1e-5)


def test_cli_path_lists_are_relative_to_the_list_and_strict_stops(tmp_path, capsys, monkeypatch):
    paths = write_images(tmp_path / "imgs", 3, size=(32, 32))
    (tmp_path / "imgs" / "list.txt").write_text("img0002.png\n\nimg0000.png\n")  # relative to the list's folder
    monkeypatch.chdir(tmp_path)
    args = ["--model", NANO, "--pretrained", "random", "--device", "cpu"]
    assert cli.main(["encode", "imgs/list.txt", *args, "--out", "l.npy"]) == 0
    index = pd.read_csv(tmp_path / "l.index.csv")
    assert index["item"].tolist() == ["imgs/img0002.png", "imgs/img0000.png"] and index["ok"].all()
    api = lab.load_model(NANO, pretrained="random", device="cpu").encode_images([paths[2], paths[0]],
                                                                                cache=False, progress=False)
    np.testing.assert_allclose(np.load(tmp_path / "l.npy"), api, atol=1e-5)
    (tmp_path / "imgs" / "bad.png").write_bytes(b"not a picture")
    capsys.readouterr()
    with pytest.warns(UserWarning, match="1 of 4 images could not be encoded"):
        assert cli.main(["encode", "imgs", *args, "--out", "all.npy"]) == 1  # bad image skipped, reported
    assert cli.main(["encode", "imgs", *args, "--strict", "--out", "strict.npy"]) == 2
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]  # after the progress bar
    assert last.startswith("error: ") and "bad.png" in last and not (tmp_path / "strict.npy").exists()


def test_cli_models_available_lists_what_loads_offline(capsys, no_network, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))  # no downloaded weights on this machine
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cli.main(["models", "--available"]) == 0
    available = capsys.readouterr().out.split()
    assert available == lab.list_models(available=True) and {"lab-vit-tiny", "lab-rn-tiny"} <= set(available)
    assert cli.main(["models"]) == 0
    everything = capsys.readouterr().out.splitlines()
    assert "ViT-B/32" in everything and "ViT-B/32" not in available and len(everything) > 10 * len(available)
