"""Figures for the embedding's decomposition (lab.studies.decomposition, textspan, sparse_concepts).

    head_heatmap(table, "variance_explained")   # layer x head, e.g. TextSpan's variance explained by m texts
    ablation_curve(curve)                        # zero-shot accuracy as layers are mean-ablated from the first
    part_norms(d)                                # how much each layer's heads and MLP write into the embedding
    span_table(heads)                            # TextSpan's texts per head, as a table figure
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

__all__ = ["head_heatmap", "ablation_curve", "part_norms", "span_table"]


def head_heatmap(table: pd.DataFrame, value: str, title: str | None = None) -> go.Figure:
    """table: one row per (layer, head) with `value` (e.g. TextSpan's last variance_explained, or an
    ablation's accuracy drop) -> a layer x head heat map, the text of each cell its value."""
    grid = table.pivot_table(index="layer", columns="head", values=value, aggfunc="last").sort_index()
    fig = go.Figure(go.Heatmap(z=grid.to_numpy(), x=[f"H{h}" for h in grid.columns], y=[f"L{l}" for l in grid.index],
                               text=np.round(grid.to_numpy(), 2), texttemplate="%{text}", colorscale="Viridis",
                               colorbar=dict(title=value.replace("_", " "))))
    fig.update_layout(title=title or f"{value.replace('_', ' ')} per head", xaxis_title="head", yaxis_title="layer",
                      height=max(260, 60 * len(grid) + 140))
    return fig


def ablation_curve(curve: pd.DataFrame, title: str = "Mean-ablating layers from the first on") -> go.Figure:
    """curve (lab.studies.decomposition.ablation_curve): zero-shot accuracy against the layers ablated."""
    fig = go.Figure(go.Scatter(x=curve["layers_ablated"], y=curve["accuracy"], mode="lines+markers"))
    fig.update_layout(title=title, xaxis_title="layers mean-ablated (and the embedding stream)",
                      yaxis=dict(title="zero-shot accuracy", tickformat=".0%", rangemode="tozero"), height=360)
    return fig


def part_norms(d, title: str = "How much each part writes into the embedding") -> go.Figure:
    """Mean norm of each part over the images, heads summed per layer beside the MLPs."""
    norms = np.linalg.norm(d.parts, axis=2).mean(0)  # (K,)
    layers = list(range(d.layers))
    heads = [float(np.linalg.norm(sum(d.head(l, h) for h in range(d.heads)), axis=1).mean()) for l in layers]
    mlps = [float(norms[d.index(f"L{l}.mlp")]) for l in layers]
    fig = go.Figure([go.Bar(x=[f"L{l}" for l in layers], y=heads, name="attention (all heads)"),
                     go.Bar(x=[f"L{l}" for l in layers], y=mlps, name="MLP")])
    fig.update_layout(title=title, barmode="group", yaxis_title="mean norm of the part", height=340)
    return fig


def span_table(heads: pd.DataFrame, title: str = "TextSpan: each head's texts") -> go.Figure:
    """heads (lab.studies.textspan.describe_heads) -> one row per head: its texts in pick order and the
    variance they explain."""
    rows = heads.sort_values(["layer", "head", "rank"]).groupby(["layer", "head"])
    cells = [[f"L{l}.H{h}" for (l, h), _ in rows], [" · ".join(g["text"]) for _, g in rows],
             [f"{g['variance_explained'].iloc[-1]:.0%}" for _, g in rows]]
    fig = go.Figure(go.Table(header=dict(values=["head", "texts, in pick order", "variance explained"]),
                             cells=dict(values=cells, align="left"), columnwidth=[1, 6, 1.5]))
    fig.update_layout(title=title, height=min(900, 120 + 28 * len(cells[0])))
    return fig
