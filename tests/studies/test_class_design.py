"""Class-design audits: rates, intervals and chi-square against scipy, a planted bias found and
halved by a remedy class, the world's and FairFace's label sets."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lab.studies import class_design as cd
from lab.errors import BadInput


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def planted(n=600, d=16, seed=0):
    """Three classes; group 'B' images carry an extra direction u that the flagged label shares."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    centres, u = basis[:3], basis[3]
    y = rng.integers(0, 3, n)
    group = np.where(np.arange(n) % 2 == 0, "A", "B")
    x = centres[y] + 0.9 * rng.normal(size=(n, d)) / np.sqrt(d) + np.where(group == "B", 1.0, 0.0)[:, None] * u
    flagged_w = unit(u + 0.3 * rng.normal(size=d) / np.sqrt(d))
    remedy_w = unit(u + 0.6 * centres.mean(0))  # along the bias direction, standing for no class
    default = cd.LabelSet("default", ["a", "b", "c", "flag"], [[]] * 4, np.array([0, 0, 0, 1], bool),
                          np.array([0, 1, 2, -1]), np.vstack([centres, flagged_w]))
    remedy = cd.LabelSet("remedy", default.names + ["remedy"], [[]] * 5, np.array([0, 0, 0, 1, 0], bool),
                         np.array([0, 1, 2, -1, -1]), np.vstack([centres, flagged_w, remedy_w]))
    return unit(x), y, group, {"default": default, "remedy": remedy}


def test_rates_intervals_and_chi_square_equal_scipy():
    x, y, group, sets = planted()
    rates, summary = cd.audit(x, group, sets)
    pred, _ = cd.assign(x, sets["default"].weights)
    flagged = pred == 3
    table = pd.crosstab(group, flagged)
    for _, row in rates[rates["label_set"] == "default"].iterrows():
        k, n = int(table.loc[row["group"], True]), int(table.loc[row["group"]].sum())
        ci = stats.binomtest(k, n).proportion_ci(method="exact")
        assert (row["k"], row["n"]) == (k, n)
        assert row["low"] == pytest.approx(ci.low, abs=1e-9) and row["high"] == pytest.approx(ci.high, abs=1e-9)
    chi2, p, dof, _ = stats.chi2_contingency(table.to_numpy(), correction=False)
    got = summary.set_index("label_set").loc["default"]
    assert got["chi2"] == pytest.approx(chi2) and got["p"] == pytest.approx(p) and got["dof"] == dof


def test_a_planted_bias_is_found_and_a_remedy_class_along_it_halves_it():
    x, y, group, sets = planted()
    rates, summary = cd.audit(x, group, sets)
    r = rates.set_index(["label_set", "group"])["rate"]
    s = summary.set_index("label_set")
    assert r["default", "B"] > 3 * r["default", "A"] and s.loc["default", "p"] < 1e-6
    assert s.loc["default", "max_min_ratio"] > 3
    assert r["remedy", "B"] <= r["default", "B"] / 2
    pred_class = {name: ls.stands_for[cd.assign(x, ls.weights)[0]] for name, ls in sets.items()}
    acc = cd.accuracy_by_group(pred_class["default"], y, group).set_index("group")["rate"]
    assert acc["A"] > acc["B"]  # flagged images count as errors
    _, probs = cd.assign(x, sets["default"].weights)
    th = cd.threshold_rates(probs, sets["default"].flagged, group).set_index(["threshold", "group"])["rate"]
    assert th[0.005, "B"] >= th[0.04, "B"] >= r["default", "B"] - 1e-9  # argmax flagged => above 4 % too


def test_world_and_fairface_label_sets():
    world = cd.world_label_sets()
    assert world["default"].names[-4:] == cd.NON_OBJECTS and world["default"].flagged.sum() == 4
    assert world["remedy"].names[-1] == "several arrows" and world["remedy"].stands_for[-1] == 9
    assert not world["remedy"].flagged[14:].any()
    ff = cd.fairface_label_sets()
    d = ff["default"]
    assert len(d.names) == 14 + 7 and d.flagged.sum() == 7 and "east asian female" in d.names
    assert "gorilla" in np.array(d.names)[d.flagged] and ff["remedy"].names[-1] == "child"
    assert d.prompts[0] == ["a photo of a white male."]


def test_fairface_adapter_reads_the_csv(tmp_path):
    from lab.data.fairface import FairFace
    pd.DataFrame({"file": ["val/1.jpg", "val/2.jpg"], "age": ["3-9", "20-29"], "gender": ["Male", "Female"],
                  "race": ["East Asian", "Latino_Hispanic"], "service_test": [True, False]}
                 ).to_csv(tmp_path / "fairface_label_val.csv", index=False)
    ds = FairFace(tmp_path)
    assert len(ds) == 2 and ds.source(0) == str(tmp_path / "val" / "1.jpg")
    assert [ds.classes[i] for i in ds.labels["label"]] == ["east asian male", "latino hispanic female"]
    assert list(ds.labels["age"]) == ["3-9", "20-29"]
    pd.DataFrame({"file": ["a.jpg"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(BadInput, match="lacks the columns"):
        FairFace(tmp_path, csv="bad.csv")


def test_world_audit_tables_equal_the_audit_by_hand():
    import lab
    from lab.data.shapeworld import WorldDataset
    model, audit_set = lab.load_model("lab-vit-tiny", device="cpu"), WorldDataset("test", 40)
    found = cd.world_audit(model, audit_set, ["count", "size"], n_train=60, n_val=30)
    x = model.encode_images(audit_set, progress=False)
    rates, summary = cd.audit(x, cd.world_groups(audit_set.labels)["size"], cd.world_label_sets(model), model.logit_scale)
    mine = found["rates"][found["rates"]["group"].str.startswith("size=")].reset_index(drop=True)
    assert np.allclose(mine["rate"], rates["rate"]) and list(found["summary"]["groups"]) == ["count"] * 2 + ["size"] * 2
    assert list(found["accuracy"]["classifier"].unique()) == ["zero-shot (default labels)", "zero-shot (remedy labels)",
                                                            "zero-shot (shapes only)", "linear probe"]
    assert set(found["thresholds"]["model"]) == {model.name} and set(found["accuracy"]["model"]) == {model.name}
