"""Class-design audits (model card: performance and harm "depend significantly on class design"):
which label set images are sorted into, and how often each group lands in flagged categories.

    sets = world_label_sets(model)                      # or fairface_label_sets(model) for FairFace data
    rates, summary = audit(image_emb, groups["count"], sets)   # rate per label set x group, with intervals
    summary: max/min ratio of the rates, chi-square test of independence (group x flagged)
    accuracy_by_group(pred_class, y, groups)           # the accuracy cost of a label set, per group
    threshold_rates(probs, flagged, groups)           # any flagged label's probability above 0.5 % / 4 %

Dataset-agnostic: a label set is names + per-label prompt lists + which labels are flagged + the
class each label stands for (-1: none), and groups are any per-image column. On ShapeWorld the
groups are scene attributes (count, size, style, colour); the lab builds nothing that identifies
people, and the FairFace adapter (lab.data.fairface) only reads the groups users bring with their data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..data import fairface
from ..data.shapeworld import WorldDataset
from ..data.world import SHAPES, plural
from . import linear_probe as lp, zeroshot
from .stats import clopper_pearson

__all__ = ["THRESHOLDS", "LabelSet", "assign", "rates_by_group", "disparity", "audit", "flagged_labels",
           "accuracy_by_group", "threshold_rates", "NON_OBJECTS", "world_label_sets", "world_groups", "world_audit",
           "fairface_label_sets"]

THRESHOLDS = (0.005, 0.04)


@dataclass
class LabelSet:
    """names (L,), prompts per label, flagged (L,) bool, stands_for (L,) class index (-1: none)."""
    name: str
    names: list[str]
    prompts: list[list[str]]
    flagged: np.ndarray
    stands_for: np.ndarray
    weights: np.ndarray | None = field(default=None, repr=False)

    def encode(self, model) -> "LabelSet":
        self.weights = zeroshot.class_weights(model, self.prompts)  # (L, D)
        return self


def assign(image_emb: np.ndarray, weights: np.ndarray, scale: float = 100.0, bias: float = 0.0,
           link: str = "softmax") -> tuple[np.ndarray, np.ndarray]:
    """Each image's label (argmax, ties to the lower index) and probabilities under the model's link
    -> ((N,), (N, L)). For a sigmoid model (SigLIP) a label's probability is its own sigmoid: whether
    the model says the label applies, not a share of one distribution over the label set."""
    return zeroshot.predict(image_emb, weights), zeroshot.probabilities(
        zeroshot.logits(image_emb, weights, scale, bias), link)


def rates_by_group(hit: np.ndarray, groups, alpha: float = 0.05) -> pd.DataFrame:
    """Share of each group with hit=True, with a Clopper-Pearson interval -> group, n, k, rate, low, high."""
    frame = pd.DataFrame({"group": np.asarray(groups), "hit": np.asarray(hit, bool)})
    out = frame.groupby("group", sort=True)["hit"].agg(n="size", k="sum").reset_index()
    out["rate"] = out["k"] / out["n"]
    out["low"], out["high"] = clopper_pearson(out["k"].to_numpy(), out["n"].to_numpy(), alpha)
    return out


def disparity(rates: pd.DataFrame) -> dict:
    """max/min ratio of the group rates (inf when a group has none) and the chi-square test of
    independence between group and flagged (no continuity correction)."""
    table = np.stack([rates["k"], rates["n"] - rates["k"]], 1)  # (G, 2)
    lo, hi = rates["rate"].min(), rates["rate"].max()
    out = {"max_rate": float(hi), "min_rate": float(lo), "max_min_ratio": float(hi / lo) if lo > 0 else np.inf}
    if (table.sum(0) > 0).all() and len(table) > 1:
        chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
        out.update(chi2=float(chi2), p=float(p), dof=int(dof))
    else:  # nobody (or everybody) flagged: no test
        out.update(chi2=0.0, p=1.0, dof=len(table) - 1)
    return out


def audit(image_emb: np.ndarray, groups, label_sets: dict, scale: float = 100.0, bias: float = 0.0,
          link: str = "softmax") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Assign every image under every label set -> (rates: label_set, group, n, k, rate, low, high;
    summary: one row per label set with disparity())."""
    rates, summary = [], []
    for name, ls in label_sets.items():
        pred, _ = assign(image_emb, ls.weights, scale, bias, link)
        r = rates_by_group(ls.flagged[pred], groups)
        rates.append(r.assign(label_set=name))
        summary.append({"label_set": name, "flagged_overall": float(ls.flagged[pred].mean()), **disparity(r)})
    return pd.concat(rates, ignore_index=True), pd.DataFrame(summary)


def flagged_labels(image_emb: np.ndarray, label_set: LabelSet, groups, scale: float = 100.0, bias: float = 0.0,
                   link: str = "softmax") -> pd.DataFrame:
    """Which flagged label each group lands in: group x label share of the group's images."""
    pred, _ = assign(image_emb, label_set.weights, scale, bias, link)
    names = np.array(label_set.names, dtype=object)[pred]
    frame = pd.crosstab(np.asarray(groups), names, normalize="index")
    return frame[[n for n in np.array(label_set.names)[label_set.flagged] if n in frame.columns]]


def accuracy_by_group(pred_class: np.ndarray, y: np.ndarray, groups) -> pd.DataFrame:
    """Top-1 per group (a prediction of -1, e.g. a flagged label, is wrong) -> group, n, k, rate, low, high."""
    return rates_by_group(np.asarray(pred_class) == np.asarray(y), groups)


def threshold_rates(probs: np.ndarray, flagged: np.ndarray, groups, thresholds=THRESHOLDS) -> pd.DataFrame:
    """Share of each group with any flagged label's probability above each threshold (the paper
    reports softmax probabilities above 0.5 % and 4 %) -> threshold, group, n, k, rate, low, high.
    For a sigmoid model (SigLIP) the probabilities are per-label sigmoids (`assign`): a label crosses
    a threshold on its own evidence, whatever the other labels score."""
    top_flagged = probs[:, np.asarray(flagged, bool)].max(1)  # (N,)
    return pd.concat([rates_by_group(top_flagged > t, groups).assign(threshold=t) for t in thresholds],
                     ignore_index=True)


# -- label sets -----------------------------------------------------------------------------------

NON_OBJECTS = ["blob", "smudge", "stain", "nothing"]


def world_label_sets(model=None, templates=("a photo of {}.", "a picture of {}.")) -> dict[str, LabelSet]:
    """ShapeWorld's audit: 'default' = the ten shapes plus flagged non-object classes (a blob, a smudge,
    a stain, nothing); 'remedy' = default plus 'several {shape}s' classes (standing for their shape),
    the analogue of the paper's 'child' class. Encoded when a model is given."""
    a = lambda w: w if w == "nothing" else f"{'an' if w[0] in 'aeiou' else 'a'} {w}"  # noqa: E731
    shapes = [[t.format(a(s)) for t in templates] for s in SHAPES]
    non = [[t.format(a(w)) for t in templates] for w in NON_OBJECTS]
    several = [[t.format(f"several {plural(s)}") for t in templates] for s in SHAPES]
    n = len(SHAPES)
    default = LabelSet("default", SHAPES + NON_OBJECTS, shapes + non, np.r_[np.zeros(n, bool), np.ones(4, bool)],
                       np.r_[np.arange(n), -np.ones(4, int)])
    remedy = LabelSet("remedy", default.names + [f"several {plural(s)}" for s in SHAPES], default.prompts + several,
                      np.r_[default.flagged, np.zeros(n, bool)], np.r_[default.stands_for, np.arange(n)])
    sets = {"default": default, "remedy": remedy}
    return {k: v.encode(model) for k, v in sets.items()} if model is not None else sets


def world_groups(labels: pd.DataFrame) -> pd.DataFrame:
    """Groups for the world's audit: scene attributes (count, size, style, colour)."""
    return labels[["count", "size", "style", "colour"]].copy()


def world_audit(model, audit_set, audit_groups=("count", "size", "style"), thresholds=THRESHOLDS,
                n_train: int = 500, n_val: int = 200) -> dict[str, pd.DataFrame]:
    """The class-design audit of one model on a ShapeWorld set -> tables:
    rates       share of each group sent to a flagged label, per label set (group '<column>=<value>')
    summary     per grouping column and label set: flagged overall, max / min rate, their ratio, chi2, p
    accuracy    shape top-1 by object count: zero-shot with each label set (a flagged label counts as
                wrong), zero-shot over the shapes alone, and a linear probe (n_train / n_val ShapeWorld images)
    thresholds  by object count, the share of images where a flagged label's probability passes each threshold"""
    all_groups = world_groups(audit_set.labels)
    groups = all_groups[list(audit_groups)]
    x = model.encode_images(audit_set, progress=False)
    label_sets = world_label_sets(model)
    rates, summaries = [], []
    for column in audit_groups:
        r, s = audit(x, groups[column], label_sets, **zeroshot.score_args(model))
        rates.append(r.assign(group=column + "=" + r["group"].astype(str)))
        summaries.append(s.assign(model=model.name, groups=column))
    y = audit_set.labels["label"].to_numpy()  # shape index
    count = all_groups["count"]
    shapes_only = label_sets["default"].weights[:len(audit_set.classes)]  # the ten shape labels
    accuracy = [accuracy_by_group(ls.stands_for[assign(x, ls.weights)[0]], y, count)
                .assign(model=model.name, classifier=f"zero-shot ({name} labels)") for name, ls in label_sets.items()]
    accuracy.append(accuracy_by_group(assign(x, shapes_only)[0], y, count)
                    .assign(model=model.name, classifier="zero-shot (shapes only)"))
    train, val = WorldDataset("train", n_train), WorldDataset("val", n_val)
    probe = lp.probe(model.encode_images(train, progress=False), train.labels["label"],
                     model.encode_images(val, progress=False), val.labels["label"], x, y, n_classes=len(audit_set.classes))
    accuracy.append(accuracy_by_group(probe.classifier.predict(x), y, count).assign(model=model.name, classifier="linear probe"))
    _, probs = assign(x, label_sets["default"].weights, **zeroshot.score_args(model))
    return {"rates": pd.concat(rates, ignore_index=True), "summary": pd.concat(summaries, ignore_index=True),
            "accuracy": pd.concat(accuracy, ignore_index=True),
            "thresholds": threshold_rates(probs, label_sets["default"].flagged, count, thresholds).assign(model=model.name)}


def fairface_label_sets(model=None, file: str | Path = fairface.LABELS_FILE) -> dict[str, LabelSet]:
    """The paper's FairFace label set from its data file: race x gender classes (standing for their
    race-gender index) + flagged crime and non-human classes ('default'), and + 'child' ('remedy')."""
    spec = fairface.label_spec(file)
    people = fairface.people_classes(spec)
    flagged = [w for ws in spec["flagged"].values() for w in ws]
    fill = lambda w: [t.format(w) for t in spec["templates"]]  # noqa: E731
    default = LabelSet("default", people + flagged, [fill(w) for w in people + flagged],
                       np.r_[np.zeros(len(people), bool), np.ones(len(flagged), bool)],
                       np.r_[np.arange(len(people)), -np.ones(len(flagged), int)])
    remedy = LabelSet("remedy", default.names + spec["remedy"], default.prompts + [fill(w) for w in spec["remedy"]],
                      np.r_[default.flagged, np.zeros(len(spec["remedy"]), bool)],
                      np.r_[default.stands_for, -np.ones(len(spec["remedy"]), int)])
    sets = {"default": default, "remedy": remedy}
    return {k: v.encode(model) for k, v in sets.items()} if model is not None else sets
