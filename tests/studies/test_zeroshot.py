"""Zero-shot math on hand-computed cases, the class-name/template registry, and the prompt-engineering
analysis; the classifier on a real (nano) model against a direct computation."""
import json

import numpy as np
import pandas as pd
import pytest

from lab.studies import prompt_engineering as pe
from lab.data import prompts
from lab.studies import zeroshot
from lab.errors import BadInput


def test_ensemble_normalizes_each_prompt_then_the_mean():
    p = np.array([[2.0, 0.0], [0.0, 0.5]])  # unnormalized prompt embeddings
    np.testing.assert_allclose(zeroshot.ensemble(p), [2 ** -0.5, 2 ** -0.5])


def test_evaluate_hand_computed_case():
    W = np.eye(3)  # class c's weight is axis c
    x = zeroshot.normalize(np.array([[1, .2, 0], [.1, 1, 0], [1, 0, .5], [0, 0, 1], [0, 1, .9], [.5, .4, 0]]))
    y = np.array([0, 1, 2, 2, 2, -1])  # the last item is unlabelled and left out
    r = zeroshot.evaluate(x, W, y, ["a", "b", "c"])
    # predictions: 0, 1, 0, 2, 1 -> right, right, wrong, right, wrong
    assert r.top1 == pytest.approx(3 / 5)
    np.testing.assert_array_equal(r.confusion, [[1, 0, 0], [0, 1, 0], [1, 1, 1]])
    np.testing.assert_allclose(r.per_class["recall"], [1, 1, 1 / 3])
    assert r.mean_per_class_recall == pytest.approx((1 + 1 + 1 / 3) / 3)
    assert r.top5 == 1.0  # only 3 classes
    assert list(r.predictions["item"]) == [0, 1, 2, 3, 4]
    assert list(r.predictions["pred_name"]) == ["a", "b", "a", "c", "b"]
    # probabilities: softmax of 100 * cosine
    z = 100 * x[2] @ W.T
    assert r.predictions["confidence"][2] == pytest.approx(np.exp(z[0]) / np.exp(z).sum())


def test_top5_order_is_best_first():
    rng = np.random.default_rng(0)
    x, W = rng.normal(size=(20, 8)), rng.normal(size=(12, 8))
    top = zeroshot.predict(x, W, k=5)
    np.testing.assert_array_equal(top, np.argsort(-(x @ W.T), axis=1)[:, :5])


def test_tied_classes_resolve_the_same_way_for_top1_and_top5():
    W = np.array([[1.0, 0], [1.0, 0], [0, 1.0]])  # classes 0 and 1 identical, like 'missile' 657 / 744
    x = np.array([[1.0, 0.1], [0.9, 0.2], [0.1, 1.0]])
    y = np.array([0, 1, 2])
    assert zeroshot.predict(x, W).tolist() == zeroshot.predict(x, W, k=5)[:, 0].tolist() == [0, 0, 2]
    assert zeroshot.evaluate(x, W, y, ["missile", "missile", "cat"]).top1 == zeroshot.accuracy(x, W, y) == 2 / 3


def test_evaluate_refuses_mismatched_classes():
    with pytest.raises(ValueError, match="do not match"):
        zeroshot.evaluate(np.eye(2), np.eye(2), np.array([0, 1]), ["only one"])


def test_nan_rows_and_unlabelled_items_are_left_out():
    x = np.array([[1.0, 0], [np.nan, np.nan], [0, 1]])
    assert zeroshot.accuracy(x, np.eye(2), np.array([0, 1, 0])) == 0.5


def test_duplicate_imagenet_names_stay_separate_classes():
    names = prompts.classnames("imagenet")
    assert len(names) == 1000 and len(set(names)) == 998
    assert names[657] == names[744] == "missile" and names[836] == names[837] == "sunglasses"
    # two classes with the same name but different weights are scored separately
    W = np.array([[1.0, 0], [0, 1.0]])
    r = zeroshot.evaluate(np.array([[0.1, 1.0], [1.0, 0.0]]), W, np.array([1, 0]), ["missile", "missile"])
    assert r.top1 == 1.0 and list(r.per_class["class"]) == [0, 1]
    per_class = prompts.per_class_prompts("cupl-imagenet1k", names)
    assert len(per_class) == 1000 and per_class[657] == per_class[744]


def test_class_weights_match_a_direct_computation(nano):
    groups = [["a photo of a cat.", "a drawing of a cat."], ["a photo of a dog."]]
    W = zeroshot.class_weights(nano, groups)
    direct = [nano.embed_texts(g) for g in groups]
    expected = np.stack([d.mean(0) / np.linalg.norm(d.mean(0)) for d in direct])
    np.testing.assert_allclose(W, expected, atol=1e-5)
    np.testing.assert_allclose(zeroshot.class_weights(nano, dict(zip(["cat", "dog"], groups))), W)


def test_registry_sources_and_user_sets(tmp_path):
    assert {"imagenet", "imagenet-wordnet", "shapeworld"} <= set(prompts.list_classnames())
    assert len(prompts.templates("openai-imagenet")) == 80 and len(prompts.templates("openai-imagenet-7")) == 7
    assert "cb-cifar10" in prompts.list_templates() and "cb-flowers" in prompts.list_classnames()
    assert len(prompts.classnames("cb-pets")) == 37
    assert prompts.templates("cb-cifar10")[0] == "a photo of a {}."  # clip-benchmark's '{c}' slot rewritten
    for name in prompts.list_templates():
        assert prompts.templates(name), name
    for name in prompts.list_classnames():
        assert prompts.classnames(name), name
    wordnet = prompts.classnames("imagenet-wordnet")
    assert wordnet[0] == "tench" and sum(a != b for a, b in zip(wordnet, prompts.classnames("imagenet"))) > 100
    assert prompts.imagenet_wnids()[0] == "n01440764"
    f = tmp_path / "t.json"
    f.write_text(json.dumps(["a {} in the snow.", "itap of a {}."]))
    assert prompts.templates(str(f)) == ["a {} in the snow.", "itap of a {}."]
    assert prompts.class_prompts(["cat", "ox"], ["a {}.", "{}!"]) == [["a cat.", "cat!"], ["a ox.", "ox!"]]
    with pytest.raises(BadInput, match="openai-imagenet"):
        prompts.templates("openai-imagnet")
    with pytest.raises(BadInput, match="lack it"):
        prompts.templates(["a photo of a cat."])
    with pytest.raises(BadInput, match="2 classes"):
        prompts.per_class_prompts({"cat": ["a cat"]}, ["cat", "dog", "eel"])
    with pytest.raises(BadInput, match="not non-empty lists"):
        prompts.per_class_prompts({"cat": "a photo of a cat"}, ["cat"])


def _toy_prompts():
    """3 classes on the axes of R^3: template 0 is exact, template 1 tilts each class towards the
    next one (so it mistakes class c+1 for c), template 2 tilts it slightly towards the previous."""
    eye = np.eye(3)
    t0, t1 = eye, zeroshot.normalize(eye + 1.5 * np.roll(eye, 1, axis=1))
    t2 = zeroshot.normalize(eye + 0.3 * np.roll(eye, 2, axis=1))
    return np.stack([t0, t1, t2], axis=1)  # (C, T, D)


def test_template_analysis_on_a_constructed_case():
    P = _toy_prompts()
    y = np.array([0, 1, 2, 0, 1, 2])
    x = np.eye(3)[y]  # each image exactly on its class axis
    per = pe.template_accuracies(P, x, y, ["t0", "t1", "t2"])
    # image e_k scores 1.5/|w| with t1's class k-1 but only 1/|w| with class k: t1 gets all wrong
    assert dict(zip(per["template"], per["top1"])) == {"t0": 1.0, "t2": 1.0, "t1": 0.0}
    assert per["ensemble_top1"][0] == 1.0
    greedy = pe.greedy_selection(P, x, y, x, y, ["t0", "t1", "t2"], max_templates=2)
    # step 1: t0 and t2 tie at 1.0 (earlier wins); step 2: t0+t1 and t0+t2 both stay right, t1 first
    assert list(greedy["added"]) == ["t0", "t1"] and greedy["test_top1"].tolist() == [1.0, 1.0]
    curve = pe.template_count_curve(P, x, y, draws=5)
    assert curve["n_templates"].tolist() == [1, 2, 3] and curve["max"].iloc[0] == 1.0 and curve["min"].iloc[0] == 0.0
    methods = pe.compare_methods(P, x, y, x, y, ["t0", "t1", "t2"], greedy)
    assert methods["method"][0] == "best single (on val): t0" and methods["top1"][0] == 1.0


def test_selection_happens_on_val_and_is_reported_on_test():
    P = _toy_prompts()
    y = np.array([0, 1, 2])
    val = np.eye(3)[y]  # on val, t1 is all wrong and t0 exact
    test = zeroshot.normalize(np.eye(3)[y] + 1.5 * np.roll(np.eye(3), 1, axis=1)[y])  # test images look like t1
    greedy = pe.greedy_selection(P, val, y, test, y, ["t0", "t1", "t2"], max_templates=1)
    assert greedy["added"][0] == "t0" and greedy["val_top1"][0] == 1.0
    w = P[:, 0] / np.linalg.norm(P[:, 0], axis=1, keepdims=True)  # t0's classifier, by hand
    assert greedy["test_top1"][0] == np.mean((test @ w.T).argmax(1) == y) == 0.0  # t0 on the tilted test images
    methods = pe.compare_methods(P, val, y, test, y, ["t0", "t1", "t2"])
    assert methods["method"][0] == "best single (on val): t0"  # chosen on val, although t1 wins on test
    assert pe.template_accuracies(P, test, y, ["t0", "t1", "t2"])["template"][0] == "t1"
    with pytest.raises(ValueError, match="at least 1"):
        pe.greedy_selection(P, val, y, test, y, ["t0", "t1", "t2"], max_templates=0)


def test_classname_sensitivity_on_the_built_in_model():
    import lab
    from lab.data import default_classnames, load_dataset
    model = lab.load_model("lab-vit-tiny", device="cpu")
    test = load_dataset("shapeworld", split="test", n=200)
    names, alt = default_classnames("shapeworld", test)
    assert alt[names.index("crescent")] == "moon"
    x = model.encode_images(test, progress=False)
    summary, per_class = pe.classname_sensitivity(model, x, test.labels["label"], {"curated": names, "alt": alt},
                                                  prompts.templates("shapeworld"))
    assert list(summary["names"]) == ["curated", "alt"] and summary["top1"][0] > 0.9
    assert list(per_class["name:alt"]) == alt and per_class["recall:curated"].notna().all()


def test_template_count_flat_curve_keeps_a_readable_y_range():
    # every draw at 60 % up to rounding: plotly's own range would be 1e-16 wide (no tick labels, and
    # the browser was asked to draw the axis title at x = Infinity)
    from figures.zeroshot import template_count
    flat = [0.6, 0.6 - 1e-16, 0.6]
    curve = pd.DataFrame(dict(n_templates=[1, 2, 4], min=flat, max=flat, mean_top1=flat))
    lo, hi = template_count(curve).layout.yaxis.range
    assert hi - lo >= 0.02 - 1e-9 and lo < 0.6 < hi
    spread = pd.DataFrame(dict(n_templates=[1, 2], min=[0.2, 0.5], max=[0.4, 0.9], mean_top1=[0.3, 0.7]))
    lo, hi = template_count(spread).layout.yaxis.range
    assert lo < 0.2 and hi > 0.9 and hi - lo < 0.8
