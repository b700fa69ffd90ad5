"""Robustness figures: accuracy per shift, effective robustness in logit axes, corruption curves,
per-class drops.

    shift_bars(table)                         # grouped bars: top-1 (95 % interval) per shift per model
    effective_robustness_plot(points, fits)   # ID vs shift accuracy, logit axes, y = x, baseline fit + band
    severity_curves(corruption_table)         # top-1 against corruption severity
    class_drops(per_class)                    # heatmap of per-class accuracy drops
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lab.studies.stats import bootstrap_band, fit_line, logit, predicted

from .palette import NEUTRAL, colour, symbol

__all__ = ["TICKS", "SHOWN", "shift_bars", "effective_robustness_plot", "severity_curves", "class_drops"]

TICKS = [0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999]
SHOWN = (0.001, 0.999)  # accuracies of 0 % and 100 % have no logit: drawn at 0.1 % / 99.9 %


def _l(p):
    """Logit of an accuracy for drawing (0 and 1 clipped to SHOWN)."""
    return logit(np.clip(p, *SHOWN))


def shift_bars(table: pd.DataFrame) -> go.Figure:
    """table: model, shift, top1, top1_low, top1_high."""
    fig = go.Figure()
    for k, (model, g) in enumerate(table.groupby("model", sort=False)):
        fig.add_bar(x=g["shift"], y=g["top1"], name=model, marker_color=colour(k),
                    error_y=dict(type="data", symmetric=False, array=g["top1_high"] - g["top1"],
                                 arrayminus=g["top1"] - g["top1_low"]),
                    hovertemplate="%{x}: %{y:.1%}<extra>" + model + "</extra>")
    fig.update_layout(title="Top-1 per shift (95 % Clopper-Pearson)", barmode="group",
                      yaxis=dict(tickformat=".0%", range=[0, 1], title="top-1"), height=450)
    return fig


_EVALUATED_SYMBOLS = ("star", "square", "triangle-up", "x", "hexagon", "triangle-down", "pentagon", "cross")


def _logit_axis(title: str) -> dict:
    return dict(title=title, tickvals=logit(np.array(TICKS)), ticktext=[f"{t:.1%}".replace(".0%", "%") for t in TICKS],
                range=[logit(0.015), logit(0.9993)])


def effective_robustness_plot(points: pd.DataFrame, shift: str, n_boot: int = 300, seed: int = 0) -> go.Figure:
    """points (lab.studies.robustness.er_points): model, kind ('baseline', 'evaluated' or 'published'), id_top1, shift_top1,
    their _low/_high, and the smoothed id_fit / shift_fit the line is fitted on.
    Axes are logit-scaled; the line is fitted on the baselines, the band is a bootstrap over them."""
    fig = go.Figure()
    grid = 1 / (1 + np.exp(-np.linspace(logit(0.015), logit(0.9993), 80)))  # even in logit space
    fig.add_scatter(x=logit(grid), y=logit(grid), mode="lines", name="y = x (no drop)",
                    line=dict(dash="dot", color=NEUTRAL))
    base = points[points["kind"] == "baseline"]
    if len(base) >= 2 and base["id_fit"].nunique() >= 2:  # fitted on the smoothed accuracies, as er_table does
        a, b = fit_line(base["id_fit"], base["shift_fit"])
        lo, hi = bootstrap_band(base["id_fit"], base["shift_fit"], grid, n_boot=n_boot, seed=seed)
        fig.add_scatter(x=logit(grid), y=logit(hi), mode="lines", line_width=0, showlegend=False, hoverinfo="skip")
        fig.add_scatter(x=logit(grid), y=logit(lo), mode="lines", line_width=0, fill="tonexty",
                        fillcolor="rgba(100,100,100,0.2)", name="baseline fit, 95 % bootstrap", hoverinfo="skip")
        fig.add_scatter(x=logit(grid), y=logit(predicted(grid, a, b)), mode="lines", name="baselines' line",
                        line=dict(color="black"))
    # baselines: grey open circles (the line's points); published: black diamonds; each evaluated model its
    # own palette colour and symbol (figures.palette), never the baselines' or the published ones'
    for kind, shape in (("baseline", "circle-open"), ("evaluated", None), ("published", "diamond")):
        for j, row in enumerate(points[points["kind"] == kind].itertuples()):
            x, y = _l(row.id_top1), _l(row.shift_top1)
            fig.add_scatter(
                x=[x], y=[y], mode="markers", name=row.model, customdata=[[row.model]],
                marker=dict(symbol=shape or _EVALUATED_SYMBOLS[j % len(_EVALUATED_SYMBOLS)],
                            size=12 if kind == "evaluated" else 9,
                            color={"evaluated": colour(j), "published": "#000000"}.get(kind, NEUTRAL)),
                error_x=dict(type="data", symmetric=False, array=[_l(row.id_top1_high) - x],
                             arrayminus=[x - _l(row.id_top1_low)]),
                error_y=dict(type="data", symmetric=False, array=[_l(row.shift_top1_high) - y],
                             arrayminus=[y - _l(row.shift_top1_low)]),
                hovertemplate=f"{row.model}<br>ID {row.id_top1:.1%}<br>{shift} {row.shift_top1:.1%}<extra></extra>")
    fig.update_layout(title=f"Effective robustness: {shift} (logit axes; 100 % drawn at 99.9 %)",
                      xaxis=_logit_axis("in-distribution top-1"),
                      yaxis=_logit_axis(f"{shift} top-1"), height=520)
    return fig


def severity_curves(table: pd.DataFrame) -> go.Figure:
    """table: model, corruption, severity, top1 -> one line per model (mean over corruptions), thin per corruption."""
    fig = go.Figure()
    for k, (model, g) in enumerate(table.groupby("model", sort=False)):
        for corruption, c in g.groupby("corruption"):
            fig.add_scatter(x=c["severity"], y=c["top1"], mode="lines", line=dict(width=1, color=colour(k)),
                            opacity=0.35, showlegend=False, name=f"{model} {corruption}",
                            hovertemplate=f"{model}<br>{corruption} %{{x}}: %{{y:.1%}}<extra></extra>")
        mean = g.groupby("severity")["top1"].mean()
        fig.add_scatter(x=mean.index, y=mean.values, mode="lines+markers", name=model,
                        line=dict(width=3, color=colour(k)), marker=dict(symbol=symbol(k), size=8, color=colour(k)))
    fig.update_layout(title="Corruptions: top-1 against severity (thin: each corruption; thick: mean)",
                      xaxis=dict(title="severity", dtick=1), yaxis=dict(tickformat=".0%", title="top-1"), height=420)
    return fig


def class_drops(per_class: pd.DataFrame) -> go.Figure:
    """per_class: class rows x shift columns of accuracy drops (ID - shift)."""
    fig = go.Figure(go.Heatmap(z=per_class.to_numpy(), x=list(per_class.columns), y=list(per_class.index),
                               colorscale="RdBu_r", zmid=0, texttemplate="%{z:.0%}",
                               hovertemplate="%{y} on %{x}: drop %{z:.1%}<extra></extra>"))
    fig.update_layout(title="Per-class drop in top-1 (in-distribution minus shift)", height=max(300, 28 * len(per_class) + 150))
    return fig
