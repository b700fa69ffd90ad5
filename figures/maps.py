"""Embedding-map figures: points coloured by any label/metadata column (figures.palette: colour-blind
safe, each category its own colour and marker symbol; prompts drawn larger with a black outline),
hover text from the chosen columns, row numbers in customdata, one legend entry per class (click
hides it, double-click isolates it).

    fig = scatter_map(coords, points, color=["shape", "colour", "count"], hover=["caption"])
`points` is a DataFrame with one row per point (labels, metadata, `modality`); with several colour
columns the figure gets a dropdown that switches between them (no recomputation, also in static HTML).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .palette import CONTINUOUS, styles

__all__ = ["SYMBOLS", "MAX_CATEGORIES", "scatter_map", "label_clusters", "metrics_table"]

SYMBOLS = {"image": "circle", "text": "diamond", "query": "star"}  # by modality when colour is a continuous value
_SYMBOLS_3D = ("circle", "square", "diamond", "cross", "x")  # what Scatter3d draws
MAX_CATEGORIES = 40  # more distinct values than this are drawn as a continuous colour scale


def _hover_text(points: pd.DataFrame, hover: list[str]) -> np.ndarray:
    """One hover string per point ("class: cat<br>shape: ..."), built once for every colouring."""
    cols = [c for c in hover if c in points]
    if not cols:
        return np.array([""] * len(points), dtype=object)
    text = pd.Series("", index=points.index)
    for k, c in enumerate(cols):
        values = points[c].round(3) if points[c].dtype.kind == "f" else points[c]
        text = text + ("<br>" if k else "") + f"{c}: " + values.astype(str)
    return text.to_numpy(dtype=object)


def _traces(coords: np.ndarray, points: pd.DataFrame, color: str, text: np.ndarray, size: int) -> list:
    three_d = coords.shape[1] == 3
    Scatter = go.Scatter3d if three_d else go.Scattergl
    modality = points["modality"] if "modality" in points else pd.Series("image", index=points.index)
    values = points[color]
    common = dict(mode="markers", hovertemplate="%{hovertext}<extra></extra>")
    traces = []
    if values.dtype.kind in "fiu" and values.nunique() > MAX_CATEGORIES:
        for mod, idx in points.groupby(modality.to_numpy()).indices.items():
            xyz = dict(zip("xyz", coords[idx].T))
            traces.append(Scatter(**xyz, **common, name=f"{mod}", customdata=idx, hovertext=text[idx],
                                  marker=dict(size=size, color=values.iloc[idx], colorscale=CONTINUOUS,
                                              cmin=float(values.min()), cmax=float(values.max()),
                                              symbol=SYMBOLS.get(mod, "circle"),
                                              showscale=not traces, colorbar=dict(title=color))))
        return traces
    groups = points.groupby([values.astype(str).to_numpy(), modality.to_numpy()], sort=False).indices
    categories = list(dict.fromkeys(values.astype(str)))
    look = styles(categories)  # colour-blind-safe colour and a symbol of its own per category
    for (value, mod), idx in groups.items():
        xyz = dict(zip("xyz", coords[idx].T))
        k = categories.index(value)
        shape = look[k]["symbol"] if mod in ("image", "text") or mod not in SYMBOLS else SYMBOLS[mod]
        if three_d and shape not in _SYMBOLS_3D:
            shape = _SYMBOLS_3D[k % len(_SYMBOLS_3D)]
        traces.append(Scatter(**xyz, **common, name=value if mod == "image" else f"{value} ({mod})",
                              legendgroup=value, customdata=idx, hovertext=text[idx],
                              marker=dict(size=size * (2 if mod != "image" else 1), color=look[k]["color"],
                                          symbol=shape,
                                          line=dict(width=1, color="black") if mod != "image" else None)))
    return traces


def scatter_map(coords: np.ndarray, points: pd.DataFrame, color="label", hover=(), title: str = "Embedding map",
                size: int = 5) -> go.Figure:
    """A 2-D or 3-D scatter of `coords` (N, 2|3). `color`: a column name or a list of them (dropdown).
    Each trace's customdata holds its points' row numbers in `points` (for selections)."""
    colors = [color] if isinstance(color, str) else list(color)
    missing = [c for c in colors if c not in points]
    if missing:
        raise KeyError(f"colour columns {missing} are not in the point table; columns are {list(points.columns)}")
    hover = list(hover) or [c for c in points.columns if c not in ("label",)][:6]
    text = _hover_text(points, hover)
    per_color = [_traces(coords, points, c, text, size) for c in colors]
    fig = go.Figure()
    for k, traces in enumerate(per_color):
        for t in traces:
            t.visible = k == 0
            fig.add_trace(t)
    if len(colors) > 1:
        counts = [len(t) for t in per_color]
        buttons = []
        for k, c in enumerate(colors):
            visible = [j == k for j, n in enumerate(counts) for _ in range(n)]
            buttons.append(dict(label=f"colour: {c}", method="update", args=[{"visible": visible},
                                                                           {"legend.title.text": c}]))
        fig.update_layout(updatemenus=[dict(buttons=buttons, x=0, xanchor="left", y=1.12, yanchor="top")])
    fig.update_layout(title=title, legend=dict(title=colors[0], itemsizing="constant"), height=600,
                      margin=dict(t=90), dragmode="lasso" if coords.shape[1] == 2 else None)
    if coords.shape[1] == 2:
        fig.update_xaxes(showticklabels=False, title=None)
        fig.update_yaxes(showticklabels=False, title=None, scaleanchor="x")
    return fig


def label_clusters(fig: go.Figure, coords: np.ndarray, clusters: np.ndarray) -> go.Figure:
    """Write each cluster's number at its centre on a 2-D map."""
    for c in np.unique(clusters):
        x, y = coords[clusters == c].mean(0)[:2]
        fig.add_annotation(x=x, y=y, text=f"<b>{c}</b>", showarrow=False, font=dict(size=16),
                           bgcolor="rgba(255,255,255,0.7)")
    return fig


def metrics_table(rows: pd.DataFrame) -> go.Figure:
    """A DataFrame as a plotly table (so the quantitative summary sits in the HTML report too)."""
    fmt = rows.map(lambda v: f"{v:.3f}" if isinstance(v, float) else str(v))
    fig = go.Figure(go.Table(header=dict(values=list(rows.columns), align="left"),
                             cells=dict(values=[fmt[c] for c in fmt.columns], align="left")))
    fig.update_layout(height=60 + 30 * len(rows), margin=dict(l=10, r=10, t=10, b=10))
    return fig
