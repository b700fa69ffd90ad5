"""Attribution figures: heatmap overlays, method x image grids, per-token bars, the metric chart.

    overlay(view, heat, alpha=0.5)                      # (H, W, 3) uint8: the map over the image
    method_grid(views, {"relevance": maps, ...}, titles)  # rows = methods, columns = images
    token_bars(words, relevance, title)                 # which prompt tokens drive the match
    metric_bars(table)                                  # pointing game / energy / deletion / insertion per method
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from .images import image_grid

__all__ = ["overlay", "method_grid", "token_bars", "metric_bars"]

_LUT = (np.array([[int(c) for c in rgb[4:-1].split(",")] for rgb in sample_colorscale("Jet", np.linspace(0, 1, 256))])
        .astype(np.float32))  # (256, 3): heat value -> colour


def overlay(view: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a map (H, W) in [0, 1] as a Jet heatmap over an image (H, W, 3) uint8; alpha = map opacity."""
    colour = _LUT[np.clip((heat * 255).astype(int), 0, 255)]  # (H, W, 3)
    return np.clip((1 - alpha) * view.astype(np.float32) + alpha * colour, 0, 255).astype(np.uint8)


def method_grid(views: np.ndarray, maps: dict[str, np.ndarray], titles: list[str], alpha: float = 0.5,
                title: str | None = None) -> go.Figure:
    """One row per method (maps[method]: (N, H, W)), one column per image; the first row is the images."""
    cells, captions = list(views), list(titles)
    for method, m in maps.items():
        cells += [overlay(v, h, alpha) for v, h in zip(views, m)]
        captions += [method] * len(views)
    return image_grid(cells, captions, cols=len(views), title=title, cell_px=110)


def token_bars(words: list[str], relevance: np.ndarray, title: str) -> go.Figure:
    fig = go.Figure(go.Bar(x=[f"{w} ({i})" for i, w in enumerate(words)], y=relevance,
                           hovertemplate="%{x}: %{y:.2f}<extra></extra>"))
    fig.update_layout(title=title, yaxis=dict(title="relevance", range=[0, 1.05]), height=300, margin=dict(t=50))
    return fig


def metric_bars(table: pd.DataFrame) -> go.Figure:
    """Grouped bars of each metric (columns) per model/method (rows, columns model, method)."""
    metrics = [c for c in ("pointing_game", "box_energy", "deletion_auc", "insertion_auc") if c in table]
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[
        m.replace("_", " ") + (" (lower is better)" if m == "deletion_auc" else "") for m in metrics])
    for k, metric in enumerate(metrics, 1):
        for model, group in table.groupby("model", sort=False):
            fig.add_bar(x=group["method"], y=group[metric], name=model, legendgroup=model, showlegend=k == 1,
                        row=1, col=k)
    fig.update_layout(title="Faithfulness of each method (random = the baseline to beat)", barmode="group",
                      height=400)
    return fig
