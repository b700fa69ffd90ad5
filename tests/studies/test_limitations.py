"""Limitation studies: the balanced counting set, the typographic band, drawn shapes on plain
backgrounds of every kind, and the studies' tables on a real built-in model (small sets)."""
import numpy as np
import pytest

import lab

from lab.data.studies import CONDITIONS, PLAIN_BACKGROUNDS, backgrounds_set, counting_set, typographic_sets
from lab.data.world import STYLES, render
from lab.data.shapeworld import WorldDataset


def test_counting_set_is_balanced_and_splits_are_disjoint():
    ds = counting_set(41)
    assert len(ds) == 40 and np.bincount(ds.labels["count"]).tolist() == [0, 10, 10, 10, 10]
    assert ds.classes == ["one", "two", "three", "four"] and (ds.labels["label"] == ds.labels["count"] - 1).all()
    keys = {s: {counting_set(20, s).content_key(i) for i in range(20)} for s in ("train", "val", "test")}
    assert not (keys["train"] & keys["test"]) and not (keys["val"] & keys["test"])


def test_backgrounds_set_covers_every_plain_kind_and_keeps_objects_apart_from_their_background():
    ds = backgrounds_set(80)
    assert ds.labels["style"].value_counts().to_dict() == {k: 20 for k in PLAIN_BACKGROUNDS}
    for i in range(len(ds)):
        pixels = np.asarray(ds.source(i), float)
        _, masks, _ = render(ds.scene(i), ds.image_size)
        inside = np.any(masks, axis=0)
        gap = np.linalg.norm(np.median(pixels[inside], 0) - np.median(pixels[~inside], 0))
        assert gap > 60, f"item {i} ({ds.labels.loc[i, 'style']}): object and background look alike"
    dark = np.asarray(ds.source(int(np.argmax(ds.labels["style"] == "dark"))), float)
    assert np.median(dark) < 80  # a dark background, not the world's light ones
    assert set(WorldDataset("test", 200).labels["style"]) <= set(STYLES)  # the splits are unchanged


@pytest.mark.parametrize("name,shape_floor", [("lab-vit-tiny", 0.9), ("lab-rn-tiny", 0.9), ("lab-vit-literate", 0.85)])
def test_builtin_models_recognise_drawn_shapes_on_any_plain_background(name, shape_floor):
    """Issue 15's floor for learners' own drawings: shape >= 90 %, colour >= 95 % on every kind. The
    literate model (re-derived in issue 24 from lab-vit-tiny with the widened backgrounds; dark shape
    0.06 before) measures 0.90-0.93 and is held to 85 %: it trades some shape for reading."""
    from lab.studies import limitations as lim
    table = lim.background_study(lab.load_model(name, device="cpu"), backgrounds_set(400))
    top1 = table.set_index(["background", "task"])["top1"]
    assert set(table["background"]) == set(PLAIN_BACKGROUNDS)
    for kind in PLAIN_BACKGROUNDS:
        assert top1[kind, "shape"] >= shape_floor and top1[kind, "colour"] >= 0.95, (kind, top1[kind].to_dict())


def test_the_band_never_covers_an_object_and_blank_differs_from_clean_only_inside_it():
    sets = typographic_sets(120)
    clean, blank = sets["clean"], sets["blank"]
    for i in range(len(clean)):
        _, masks, _ = render(clean.scene(i), clean.image_size)
        x0, y0, x1, y1 = clean.band[i]
        inside = np.zeros((64, 64), bool)
        inside[y0:y1, x0:x1] = True
        assert masks and not any((m & inside).any() for m in masks), f"item {i}: the band covers an object"
        a, b = np.asarray(clean.source(i)), np.asarray(blank.source(i))
        differ = (a != b).any(-1)
        assert differ[inside].any() and not differ[~inside].any()
    assert list(sets) == CONDITIONS
    written = clean.labels["written"]
    assert (written != clean.labels["label"]).all() and (sets["word_only"].labels["label"] == written).all()
    assert sets["wrong"].words == [clean.classes[w] for w in written]
    assert sets["correct"].words == list(clean.labels["shape"])
    keys = {c: sets[c].content_key(0) for c in CONDITIONS}
    assert len(set(keys.values())) == len(CONDITIONS)  # each condition has its own cache entries


def test_studies_on_a_built_in_model():
    from lab.studies import limitations as lim
    model = lab.load_model("lab-vit-tiny", device="cpu")
    counting = lim.counting_study(model, n_train=120, n_val=40, n_test=80)
    overall = counting[counting["count"] == "all"].set_index("method")
    assert list(overall.index) == ["zero-shot (specific prompts)", "zero-shot (generic prompt)", "linear probe"]
    assert (overall["n"] == 80).all() and (overall["low"] <= overall["rate"]).all()
    close = lim.close_caption_study(model, n=40, n_distractors=5).set_index("kind")
    assert close.loc["position", "n"] == (lab.data.shapeworld.WorldDataset("test", 40).labels["count"] == 1).sum()
    assert ((close["top1_after"] + close["close_wins"]) <= 1 + 1e-9).all()
    assert (close["top1_after"] <= close["top1_before"]).all()  # one more candidate can only take wins away
    table, preds = lim.typographic_study(model, typographic_sets(30))
    t = table.set_index("condition")
    assert t.loc["clean", "flip_rate"] == 0 and np.isnan(t.loc["word_only", "flip_rate"])
    assert lim.reading_effect(table) == pytest.approx(t.loc["wrong", "written_rate"] - t.loc["nonsense", "written_rate"])
    assert t.loc["blank", "flip_rate"] == pytest.approx((preds["blank"] != preds["clean"]).mean())


def test_the_literate_model_reads_and_the_others_do_not():
    """The built-in literate model is steered by a written class name as CLIP is (issue 16's floors:
    reading effect >= 0.3, word only >= 0.8); the plain tiny models are only distracted by words."""
    from lab.studies import limitations as lim
    sets = typographic_sets(300)
    effects = {}
    for name in ("lab-vit-literate", "lab-vit-tiny"):
        table, _ = lim.typographic_study(lab.load_model(name, device="cpu"), sets)
        t = table.set_index("condition")
        effects[name] = (lim.reading_effect(table), t.loc["word_only", "top1"], t.loc["clean", "top1"])
    effect, word_only, clean = effects["lab-vit-literate"]
    assert effect >= 0.3 and word_only >= 0.8 and clean >= 0.95
    assert effects["lab-vit-tiny"][0] < 0.1 and effects["lab-vit-tiny"][1] < 0.3


def test_notebook_06_runs_through_papermill(tmp_path, monkeypatch):
    from pathlib import Path

    import pandas as pd

    from lab.report import run_report
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    nb = Path(__file__).parents[2] / "notebooks" / "06_limitations_and_class_design.ipynb"
    params = {"models": ["lab-vit-tiny"], "n_count_train": 80, "n_count_val": 40, "n_count_test": 40, "n_close": 30,
              "n_distractors": 4, "n_typographic": 12, "n_audit": 80, "audit_groups": ["count", "size"],
              "reading_models": ["lab-vit-literate"], "device": "cpu"}
    entry = run_report([nb], params, {}, tmp_path / "out", progress=False)["notebooks"][0]
    assert entry["status"] == "ok", entry.get("error")
    folder = tmp_path / "out" / "06_limitations_and_class_design"
    typo = pd.read_csv(folder / "typographic.csv")
    for name in ("lab-vit-tiny", "lab-vit-literate"):
        assert list(typo[typo["model"] == name]["condition"]) == ["clean", "blank", "correct", "wrong", "nonsense",
                                                                  "word_only"]
    summary = pd.read_csv(folder / "class_design_summary.csv")
    assert set(summary["groups"]) == {"count", "size"} and set(summary["label_set"]) == {"default", "remedy"}
    assert {"lab-vit-tiny/typographic/reading_effect", "lab-vit-literate/typographic/reading_effect"} <= \
        set(entry["run"]["results"])
