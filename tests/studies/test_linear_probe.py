"""Linear probes and few-shot: the paper's protocol against scikit-learn, its λ search on stub
score tables, k-shot sampling and effective shots."""
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from lab.studies import linear_probe as lp


def blobs(n, classes=5, d=16, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(classes, d))
    y = rng.integers(0, classes, n)
    x = centres[y] + spread * rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True), y


def test_fit_equals_scikit_learn():
    x, y = blobs(300)
    for C in (0.01, 0.316, 10.0):
        ours = lp.fit(x, y, C).predict_proba(x)
        theirs = LogisticRegression(C=C, max_iter=1000).fit(x, y).predict_proba(x)
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_grid_is_the_papers():
    assert len(lp.LAMBDAS) == 97 and lp.LAMBDAS[0] == pytest.approx(1e-6) and lp.LAMBDAS[-1] == pytest.approx(1e6)
    assert np.allclose(np.diff(np.log10(lp.LAMBDAS)), 1 / 8)
    assert np.allclose(lp.LAMBDAS[::16], 10.0 ** np.arange(-6, 7, 2))  # the 7 starting points


def reference_search(table):
    """The paper's search written out by hand: 7 points, then halve around the best."""
    visited = {i: table[i] for i in range(0, 97, 16)}
    for step in (8, 4, 2, 1):
        b = max(visited, key=lambda i: (visited[i], i))
        for j in (b - step, b + step):
            if 0 <= j < 97:
                visited[j] = table[j]
    return max(visited, key=lambda i: (visited[i], i)), visited


@pytest.mark.parametrize("peak", [0, 5, 37, 50, 63, 90, 96])
def test_search_finds_a_unimodal_peak_within_15_points(peak):
    table = -np.abs(np.arange(97) - peak).astype(float)
    calls = []
    best, visited = lp.search(lambda i: calls.append(i) or table[i])
    assert best == peak and len(calls) == len(set(calls)) == len(visited) <= 15


@pytest.mark.parametrize("seed", range(6))
def test_search_picks_what_the_papers_search_picks_on_stub_tables(seed):
    rng = np.random.default_rng(seed)
    table = np.round(rng.random(97), 1)  # rough, with ties
    best, visited = lp.search(lambda i: table[i])
    ref_best, ref_visited = reference_search(table)
    assert best == ref_best and set(visited) == set(ref_visited) and len(visited) <= 15


def test_probe_protocol_refits_on_train_plus_val_and_warns_at_the_edge():
    x, y = blobs(600, seed=1)
    xt, yt, xv, yv, xs, ys = x[:300], y[:300], x[300:450], y[300:450], x[450:], y[450:]
    res = lp.probe(xt, yt, xv, yv, xs, ys)
    assert len(res.curve) <= 15 and res.lam in set(res.curve["lambda"])
    ref = LogisticRegression(C=res.C, max_iter=1000).fit(np.r_[xt, xv], np.r_[yt, yv])
    assert res.top1 == pytest.approx((ref.predict(xs) == ys).mean())
    assert 0 < res.top1 <= res.top5 <= 1 and 0 < res.mean_per_class_recall <= 1
    # separable blobs: the weakest regularisation wins ties to the larger λ only when accuracy is flat
    x2, y2 = blobs(200, seed=2, spread=0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res2 = lp.probe(x2[:80], y2[:80], x2[80:140], y2[80:140], x2[140:], y2[140:])
    assert res2.at_edge == (res2.index in (0, 96))
    assert any("edge of the grid" in str(w.message) for w in caught) == res2.at_edge


def test_metrics_top5_and_mean_per_class_recall():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])
    m = lp.metrics(scores, np.array([0, 1, 1, 1]))
    assert m["top1"] == 0.5 and m["top5"] == 1.0 and m["mean_per_class_recall"] == pytest.approx((1 + 1 / 3) / 2)


def test_k_shot_sets_have_exactly_k_per_class_differ_by_seed_and_raise_when_short():
    y = np.repeat(np.arange(4), [20, 17, 30, 16])
    for k in (1, 2, 4, 8, 16):
        idx = lp.k_shot_indices(y, k, seed=0)
        assert np.bincount(y[idx]).tolist() == [k] * 4 and len(set(idx)) == 4 * k
    assert set(lp.k_shot_indices(y, 4, 0)) != set(lp.k_shot_indices(y, 4, 1))
    assert (lp.k_shot_indices(y, 4, 3) == lp.k_shot_indices(y, 4, 3)).all()
    with pytest.raises(ValueError, match=r"classes \[1, 3\]"):
        lp.k_shot_indices(y, 18)


def test_few_shot_curve_rises_and_effective_shots_interpolate_in_log_k():
    x, y = blobs(900, classes=4, seed=3, spread=1.2)
    curve = lp.few_shot(x[:400], y[:400], x[400:600], y[400:600], x[600:], y[600:], ks=(1, 4, 16), seeds=(0, 1))
    assert len(curve) == 6 and set(curve["k"]) == {1, 4, 16}
    means = curve.groupby("k")["top1"].mean()
    assert means[16] > means[1]
    table = pd.DataFrame({"k": [1, 2, 4, 8, 16], "seed": 0, "top1": [0.2, 0.4, 0.5, 0.7, 0.8]})
    assert lp.effective_shots(table, 0.45) == {"effective_shots": pytest.approx(2 * 2 ** 0.5), "bound": ""}
    assert lp.effective_shots(table, 0.7)["effective_shots"] == pytest.approx(8)
    assert lp.effective_shots(table, 0.1) == {"effective_shots": 1.0, "bound": "<"}
    assert lp.effective_shots(table, 0.9) == {"effective_shots": 16.0, "bound": ">"}


def test_the_robustness_baseline_is_this_probe_on_a_real_model():
    import lab
    from lab.studies import robustness as rb
    from lab.data.shapeworld import WorldDataset
    model = lab.load_model("lab-vit-tiny", device="cpu")
    train, val, test = WorldDataset("train", 150), WorldDataset("val", 80), WorldDataset("test", 80)
    classify = rb.linear_probe(model, train, val)
    x = {name: model.encode_images(d, progress=False) for name, d in (("t", train), ("v", val), ("s", test))}
    y = {name: d.labels["label"].to_numpy() for name, d in (("t", train), ("v", val), ("s", test))}
    res = lp.probe(x["t"], y["t"], x["v"], y["v"], x["s"], y["s"], n_classes=len(train.classes))
    assert classify.C == pytest.approx(res.C) and classify.val_top1 == pytest.approx(res.val_score)
    assert (classify(test)[:, 0] == y["s"]).mean() == pytest.approx(res.top1)
