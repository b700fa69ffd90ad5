"""Figures of the zero-shot / prompt-engineering study (inputs: the DataFrames of
`lab.studies.prompt_engineering` and `lab.studies.zeroshot.Evaluation`).

    template_bars(per_template)                 # top-1 of each template alone, ensemble as a line
    method_dots(methods, n)                     # ensemble vs best single vs greedy subset vs ...
    template_count(curve, greedy)               # accuracy against the number of templates
    classname_changes(per_class, "curated", "original")  # classes whose wording matters most
    confusion_worst(evaluation, k=10)           # confusion matrix of the k worst classes
    probability_bars(probs, classes)            # one image's class probabilities
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lab.studies import zeroshot
from lab.studies.stats import wilson_interval

from .palette import NEUTRAL, style

__all__ = ["template_bars", "method_dots", "template_count", "classname_changes", "confusion_worst",
           "probability_bars"]


def _pct_axis(fig, axis="x"):
    fig.update_layout({f"{axis}axis": dict(tickformat=".1%", title="top-1 accuracy")})
    return fig


def template_bars(per_template: pd.DataFrame, top: int | None = None) -> go.Figure:
    """Horizontal bars: each template's top-1 alone (best at the top); dashed line: the full ensemble."""
    df = per_template.head(top) if top else per_template
    fig = go.Figure(go.Bar(x=df["top1"], y=df["template"], orientation="h",
                           customdata=df[["top5"]], hovertemplate="%{y}<br>top-1 %{x:.1%}, top-5 %{customdata[0]:.1%}"
                                                                  "<extra></extra>"))
    ens = float(per_template["ensemble_top1"].iloc[0])
    fig.add_vline(x=ens, line_dash="dash", annotation_text=f"ensemble of all {len(per_template)}: {ens:.1%}",
                  annotation_position="bottom right", annotation_bgcolor="white")
    lo = max(0.0, float(df["top1"].min()) - 0.05)
    fig.update_layout(title="Top-1 of each template alone",
                      yaxis=dict(autorange="reversed", automargin=True, type="category", dtick=1),
                      xaxis=dict(range=[lo, min(1.0, max(ens, float(df["top1"].max())) + 0.03)]),
                      height=max(300, 18 * len(df) + 120))
    return _pct_axis(fig)


def method_dots(methods: pd.DataFrame, n: int) -> go.Figure:
    """Held-out top-1 per prompting method (columns method, top1[, top5]) as dots with 95 % Wilson
    intervals over the n test images, so differences within the noise look like it."""
    lo, hi = wilson_interval(methods["top1"], n)
    hover = "%{y}<br>top-1 %{x:.1%}" + ("<br>top-5 %{customdata[0]:.1%}" if "top5" in methods else "")
    fig = go.Figure(go.Scatter(
        x=methods["top1"], y=methods["method"], mode="markers+text", text=[f"{v:.1%}" for v in methods["top1"]],
        textposition="top center", marker_size=11, customdata=methods[["top5"]] if "top5" in methods else None,
        error_x=dict(type="data", symmetric=False, array=hi - methods["top1"], arrayminus=methods["top1"] - lo),
        hovertemplate=hover + "<extra></extra>"))
    fig.update_layout(title=f"Held-out top-1 by prompting method (95 % interval, n = {n})",
                      yaxis=dict(autorange="reversed", automargin=True, type="category", dtick=1),
                      height=max(300, 45 * len(methods) + 120))
    return _pct_axis(fig)


def template_count(curve: pd.DataFrame, greedy: pd.DataFrame | None = None) -> go.Figure:
    """Mean top-1 (band: min-max over random draws) against the number of templates; the greedy
    selection's held-out top-1 on top."""
    fig = go.Figure()
    fig.add_scatter(x=curve["n_templates"], y=curve["max"], mode="lines", line_width=0, showlegend=False,
                    hoverinfo="skip")
    fig.add_scatter(x=curve["n_templates"], y=curve["min"], mode="lines", line_width=0, fill="tonexty",
                    name="random draws (min-max)", hoverinfo="skip")
    fig.add_scatter(x=curve["n_templates"], y=curve["mean_top1"], mode="lines+markers", name="random draws (mean)")
    if greedy is not None:
        fig.add_scatter(x=greedy["n_templates"], y=greedy["test_top1"], mode="lines+markers", name="greedy (held-out)",
                        customdata=greedy[["added"]], hovertemplate="+ %{customdata[0]}<br>%{y:.1%}<extra></extra>")
    ticks = sorted({*curve["n_templates"], *(greedy["n_templates"] if greedy is not None else [])})
    fig.update_layout(title="Accuracy against the number of templates",
                      xaxis=dict(type="log", title="templates", tickvals=ticks),
                      yaxis=dict(range=_padded_range(curve[["min", "max", "mean_top1"]].to_numpy(),
                                                     None if greedy is None else greedy["test_top1"].to_numpy())))
    return _pct_axis(fig, "y")


def _padded_range(*values, min_span: float = 0.02) -> list[float]:
    """A y range for accuracies at least `min_span` wide. Curves that are flat up to rounding
    (0.6 and 0.6 - 1e-16) would otherwise get a range of 1e-16: no tick labels, and the browser
    puts the axis title at x = Infinity."""
    v = np.concatenate([np.ravel(a) for a in values if a is not None])
    lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
    pad = max(min_span - (hi - lo), 0) / 2 + 0.05 * (hi - lo)
    return [lo - pad, hi + pad]


def classname_changes(per_class: pd.DataFrame, a: str, b: str, top: int = 20) -> go.Figure:
    """The classes whose recall changes most between wordings a and b (dumbbells: one dot per
    wording), labelled 'name a → name b'."""
    df = per_class.assign(delta=per_class[f"recall:{b}"] - per_class[f"recall:{a}"])
    df = df.reindex(df["delta"].abs().sort_values(ascending=False).index).head(top)
    labels = [f"{x} → {y}" if x != y else x for x, y in zip(df[f"name:{a}"], df[f"name:{b}"])]
    fig = go.Figure()
    for k, key in enumerate((a, b)):
        fig.add_scatter(x=df[f"recall:{key}"], y=labels, mode="markers", name=key, marker=dict(size=10, **style(k)))
    for x0, x1, y in zip(df[f"recall:{a}"], df[f"recall:{b}"], labels):
        fig.add_shape(type="line", x0=x0, x1=x1, y0=y, y1=y, line_color=NEUTRAL, layer="below")
    fig.update_layout(title=f"Per-class recall: {a} vs {b} names (largest changes)",
                      yaxis=dict(autorange="reversed", automargin=True), height=max(300, 24 * len(df) + 120),
                      xaxis=dict(tickformat=".0%", title="recall"))
    return fig


def confusion_worst(evaluation, k: int = 10) -> go.Figure:
    """Row-normalized confusion among the k classes with the lowest recall and the classes they
    are most often mistaken for."""
    pc = evaluation.per_class.dropna(subset=["recall"]).sort_values("recall")
    rows = pc["class"].head(k).to_numpy()
    conf = evaluation.confusion
    off = conf[rows].copy()
    off[np.arange(len(rows)), rows] = 0
    cols = list(dict.fromkeys([*rows, *np.argsort(-off.sum(0))[:k]]))[: max(k, len(rows)) + k // 2]
    sub = conf[np.ix_(rows, cols)] / np.maximum(conf[rows].sum(1, keepdims=True), 1)
    names = list(evaluation.per_class["name"])
    fig = go.Figure(go.Heatmap(z=sub, x=[f"{names[c]} ({c})" for c in cols], y=[f"{names[r]} ({r})" for r in rows],
                               colorscale="Blues", zmin=0, zmax=1, text=np.round(sub * 100).astype(int),
                               texttemplate="%{text}", hovertemplate="true %{y}<br>predicted %{x}<br>%{z:.1%}"
                                                                     "<extra></extra>"))
    fig.update_layout(title=f"Confusion of the {len(rows)} worst classes (% of each true class)",
                      xaxis=dict(title="predicted", tickangle=-45), yaxis=dict(title="true", autorange="reversed"),
                      height=max(350, 30 * len(rows) + 200))
    return fig


def probability_bars(probs, classes, title: str = "Class probabilities", top: int = 15,
                     link: str = "softmax") -> go.Figure:
    """One image's probabilities over classes, largest first (at most `top`); the axis says what they
    are under the model's link (a softmax over the classes, or a sigmoid per class)."""
    probs = np.asarray(probs, dtype=float)
    order = np.argsort(-probs, kind="stable")[:top]
    repeated = len(set(classes)) < len(classes)  # e.g. ImageNet's two 'missile' classes: keep both bars
    labels = [f"{classes[i]} ({i})" if repeated else classes[i] for i in order]
    fig = go.Figure(go.Bar(x=probs[order], y=labels, orientation="h",
                           text=probs[order], texttemplate="%{text:.1%}"))
    fig.update_layout(title=title, yaxis=dict(autorange="reversed", automargin=True),
                      xaxis=dict(range=[0, 1], tickformat=".0%", title=f"probability: {zeroshot.link_label(link)}"),
                      height=max(250, 24 * len(order) + 100), margin=dict(t=50))
    return fig
