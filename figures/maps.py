"""Embedding-map figures: points coloured by any label/metadata column (figures.palette: colour-blind
safe, each category its own colour and marker symbol; prompts drawn larger with a black outline),
hover text from the chosen columns, row numbers in customdata, one legend entry per class (click
hides it, double-click isolates it).

    fig = scatter_map(coords, points, color=["shape", "colour", "count"], hover=["caption"])
`points` is a DataFrame with one row per point (labels, metadata, `modality`); with several colour
columns the figure gets a dropdown that switches between them (no recomputation, also in static HTML).

Above DENSITY_ABOVE points (`max_points=` overrides it) a 2-D map is a density image with a sample of
the points on top, so a million-point map stays a few MB (python benchmarks/bench_explorer_scale.py):
- `density_image`: every point binned on a DENSITY_PX pixel grid (numpy, no datashader); a pixel's
  colour mixes its points' category colours by their counts, a continuous column (more than
  MAX_CATEGORIES values) shows the mean value of its points on the CONTINUOUS scale; opacity grows
  with log(count). A PNG data URI in `layout.images`, on the data extent, below the traces.
- `sample_rows`: at most SAMPLE_POINTS rows drawn as the usual traces (hover, customdata = their rows
  in the full table, a legend entry per category): prompts and other non-image points first, then a
  seeded random choice, optionally inside a view (the explorer redraws them on zoom: `point_layer`).
The colour dropdown switches the traces and the image (`images[k].visible` in its relayout args).
Legend clicks hide a category's sampled points, not its share of the image.
"""
from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go
from PIL import Image

from .palette import CONTINUOUS, styles

__all__ = ["SYMBOLS", "MAX_CATEGORIES", "DENSITY_ABOVE", "SAMPLE_POINTS", "DENSITY_PX", "scatter_map", "density_image",
           "map_extent", "sample_rows", "column_scale", "point_layer", "label_clusters", "metrics_table"]

SYMBOLS = {"image": "circle", "text": "diamond", "query": "star"}  # by modality when colour is a continuous value
_SYMBOLS_3D = ("circle", "square", "diamond", "cross", "x")  # what Scatter3d draws
MAX_CATEGORIES = 40  # more distinct values than this are drawn as a continuous colour scale
DENSITY_ABOVE = 100_000  # 2-D maps of more points are a density image plus a sample of the points
SAMPLE_POINTS = 20_000  # points drawn as markers above DENSITY_ABOVE
DENSITY_PX = (900, 600)  # the density image's pixel grid: width, height


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


def _continuous(values: pd.Series) -> bool:
    return values.dtype.kind in "fiu" and values.nunique() > MAX_CATEGORIES


def _traces(coords: np.ndarray, points: pd.DataFrame, color: str, text: np.ndarray, size: int,
            rows: np.ndarray | None = None, scale: list | tuple | None = None) -> list:
    """The marker traces of `points`. rows: their row numbers in the full point table (customdata;
    default their positions); scale: the full column's categories (list) or (min, max) when these
    points are a sample of it, so a sample is coloured as the whole column is."""
    three_d = coords.shape[1] == 3
    Scatter = go.Scatter3d if three_d else go.Scattergl
    modality = points["modality"] if "modality" in points else pd.Series("image", index=points.index)
    values = points[color]
    common = dict(mode="markers", hovertemplate="%{hovertext}<extra></extra>")
    ids = (lambda idx: idx) if rows is None else (lambda idx: rows[idx])
    traces = []
    if isinstance(scale, tuple) or (scale is None and _continuous(values)):
        cmin, cmax = scale or (float(values.min()), float(values.max()))
        for mod, idx in points.groupby(modality.to_numpy()).indices.items():
            xyz = dict(zip("xyz", coords[idx].T))
            traces.append(Scatter(**xyz, **common, name=f"{mod}", customdata=ids(idx), hovertext=text[idx],
                                  marker=dict(size=size, color=values.iloc[idx], colorscale=CONTINUOUS,
                                              cmin=cmin, cmax=cmax,
                                              symbol=SYMBOLS.get(mod, "circle"),
                                              showscale=not traces, colorbar=dict(title=color))))
        return traces
    groups = points.groupby([values.astype(str).to_numpy(), modality.to_numpy()], sort=False).indices
    categories = scale or list(dict.fromkeys(values.astype(str)))
    look = styles(categories)  # colour-blind-safe colour and a symbol of its own per category
    order = sorted(groups, key=lambda g: categories.index(g[0])) if scale else groups  # a sample: the column's order
    for value, mod in order:
        idx = groups[value, mod]
        xyz = dict(zip("xyz", coords[idx].T))
        k = categories.index(value)
        shape = look[k]["symbol"] if mod in ("image", "text") or mod not in SYMBOLS else SYMBOLS[mod]
        if three_d and shape not in _SYMBOLS_3D:
            shape = _SYMBOLS_3D[k % len(_SYMBOLS_3D)]
        traces.append(Scatter(**xyz, **common, name=value if mod == "image" else f"{value} ({mod})",
                              legendgroup=value, customdata=ids(idx), hovertext=text[idx],
                              marker=dict(size=size * (2 if mod != "image" else 1), color=look[k]["color"],
                                          symbol=shape,
                                          line=dict(width=1, color="black") if mod != "image" else None)))
    return traces


def map_extent(coords: np.ndarray, pad: float = 0.02) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1): the data's bounding box of `coords` (N, 2), widened by `pad` of its size."""
    lo, hi = np.nanmin(coords[:, :2], 0).astype(float), np.nanmax(coords[:, :2], 0).astype(float)  # (2,) each
    margin = np.where(hi > lo, (hi - lo) * pad, 0.5)
    (x0, y0), (x1, y1) = lo - margin, hi + margin
    return float(x0), float(x1), float(y0), float(y1)


def _rgb(colours) -> np.ndarray:
    return np.array([plotly.colors.hex_to_rgb(c) for c in colours], dtype=np.float32)  # (K, 3)


def _on_scale(values: np.ndarray, scale: str) -> np.ndarray:
    """RGB (N, 3) of values in [0, 1] on a plotly colour scale (e.g. CONTINUOUS)."""
    stops = plotly.colors.get_colorscale(scale)
    at, rgb = np.array([s for s, _ in stops]), _rgb([c for _, c in stops])
    return np.stack([np.interp(values, at, rgb[:, j]) for j in range(3)], 1)


def density_image(coords: np.ndarray, categories: np.ndarray, colours, extent=None, px=DENSITY_PX) -> dict:
    """Every point of `coords` (N, 2) binned on a px = (width, height) grid over `extent` (x0, x1, y0, y1;
    default map_extent) -> a `layout.images` entry (a PNG data URI stretched over the extent, below
    the traces). categories: (N,) integer codes into `colours` ("#rrggbb" each), a pixel mixing its
    points' colours by their counts; or (N,) float values with `colours` a colour-scale name, a pixel
    showing its points' mean value on it (NaN values are left out). Opacity grows with log(count); the
    PNG has 256 colours (with alpha), which keeps a 900 x 600 image near 150 kB."""
    (w, h), (x0, x1, y0, y1) = px, extent or map_extent(coords)
    categories = np.asarray(categories)
    if isinstance(colours, str):  # continuous: the mean value per pixel, coloured afterwards
        ok = np.isfinite(categories)
        coords, values = coords[ok], categories[ok].astype(np.float64)
        lo, hi = (values.min(), values.max()) if len(values) else (0.0, 1.0)
        weights = ((values - lo) / (hi - lo if hi > lo else 1.0))[:, None]  # (N, 1)
    else:
        weights = _rgb(colours)[categories]  # (N, 3)
    col = np.clip(((coords[:, 0] - x0) / (x1 - x0) * w).astype(np.int64), 0, w - 1)
    row = np.clip(((y1 - coords[:, 1]) / (y1 - y0) * h).astype(np.int64), 0, h - 1)  # row 0 at the top
    pixel = row * w + col  # (N,)
    counts = np.bincount(pixel, minlength=w * h).astype(np.float64)  # (H*W,)
    mean = np.stack([np.bincount(pixel, weights[:, j], w * h) for j in range(weights.shape[1])], 1)
    mean /= np.maximum(counts, 1)[:, None]  # (H*W, C): mean colour, or mean scaled value
    rgb = _on_scale(mean[:, 0], colours) if isinstance(colours, str) else mean
    alpha = np.where(counts > 0, 0.3 + 0.7 * np.log1p(counts) / np.log1p(max(counts.max(), 1)), 0)
    rgba = np.concatenate([rgb, 255 * alpha[:, None]], 1).round().astype(np.uint8).reshape(h, w, 4)
    buf = io.BytesIO()  # 256 colours with alpha: a third of the RGBA file's size, alike to the eye
    Image.fromarray(rgba, "RGBA").quantize(256, method=Image.Quantize.FASTOCTREE).save(buf, format="PNG")
    return dict(source="data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(), xref="x", yref="y",
                x=x0, y=y1, sizex=x1 - x0, sizey=y1 - y0, xanchor="left", yanchor="top", sizing="stretch",
                layer="below")


def sample_rows(coords: np.ndarray, points: pd.DataFrame, k: int = SAMPLE_POINTS, view=None, seed: int = 0
                ) -> np.ndarray:
    """At most k rows (sorted) to draw as markers: non-image points (prompts) first, then a seeded random
    choice of the rest; only rows inside view = (x0, x1, y0, y1) when given. Each row's priority is
    fixed by the seed, so a smaller view keeps every point a larger one showed there (zooming only adds)."""
    # a stream of its own: data drawn with default_rng(seed) would otherwise order the sample (all of one class)
    priority = np.random.default_rng((seed, 0x6D6170)).random(len(coords), dtype=np.float32)  # (N,)
    if "modality" in points:
        priority[(points["modality"] != "image").to_numpy()] = -1
    rows = np.arange(len(coords))
    if view is not None:
        x0, x1, y0, y1 = view
        x, y = coords[:, 0], coords[:, 1]
        rows = np.flatnonzero((x >= min(x0, x1)) & (x <= max(x0, x1)) & (y >= min(y0, y1)) & (y <= max(y0, y1)))
    if len(rows) > k:
        rows = rows[np.argpartition(priority[rows], k - 1)[:k]]
    return np.sort(rows)


def column_scale(values: pd.Series) -> list | tuple:
    """A column's colouring: its categories in order of appearance, or (min, max) when continuous."""
    return (float(values.min()), float(values.max())) if _continuous(values) else list(
        pd.unique(values.astype(str)))


def point_layer(coords: np.ndarray, points: pd.DataFrame, color: str, rows: np.ndarray, hover: list[str],
                size: int = 5, scale=None) -> list:
    """The marker traces of `rows` of a large 2-D map (coords (N, 2), points N rows), coloured as the
    whole `color` column is (`scale`: its column_scale, computed when not given), customdata = `rows`.
    Markers are 2 px smaller than `size`, so the density image shows between them."""
    rows = np.asarray(rows, dtype=np.int32)  # int32 and float32 travel as typed arrays (int64 as a list)
    sub = points.iloc[rows]
    xy = np.asarray(coords[rows], dtype=np.float32)  # (n, 2)
    return _traces(xy, sub, color, _hover_text(sub, hover), max(size - 2, 2), rows=rows,
                   scale=column_scale(points[color]) if scale is None else scale)


def _layer_image(coords: np.ndarray, points: pd.DataFrame, color: str, scale, extent) -> dict:
    values = points[color]
    if isinstance(scale, tuple):
        return density_image(coords, values.to_numpy(dtype=np.float64), CONTINUOUS, extent)
    codes = pd.Categorical(values.astype(str), categories=scale).codes  # (N,) in the order of `scale`
    return density_image(coords, codes, [s["color"] for s in styles(scale)], extent)


def _density_map(coords, points, colors, hover, size) -> tuple[list[list], list[dict], tuple]:
    """Per colour column: the sampled points' traces and the density image; and the map's extent."""
    coords = np.asarray(coords, dtype=np.float32)  # (N, 2)
    extent, rows = map_extent(coords), sample_rows(coords, points)
    scales = [column_scale(points[c]) for c in colors]
    per_color = [point_layer(coords, points, c, rows, hover, size, scale) for c, scale in zip(colors, scales)]
    images = [dict(_layer_image(coords, points, c, scale, extent), visible=k == 0)
              for k, (c, scale) in enumerate(zip(colors, scales))]
    return per_color, images, extent


def scatter_map(coords: np.ndarray, points: pd.DataFrame, color="label", hover=(), title: str = "Embedding map",
                size: int = 5, max_points: int = DENSITY_ABOVE) -> go.Figure:
    """A 2-D or 3-D scatter of `coords` (N, 2|3). `color`: a column name or a list of them (dropdown).
    Each trace's customdata holds its points' row numbers in `points` (for selections). A 2-D map of
    more than `max_points` points is a density image with SAMPLE_POINTS of them drawn on top."""
    colors = [color] if isinstance(color, str) else list(color)
    missing = [c for c in colors if c not in points]
    if missing:
        raise KeyError(f"colour columns {missing} are not in the point table; columns are {list(points.columns)}")
    hover = list(hover) or [c for c in points.columns if c not in ("label",)][:6]
    images, extent = [], None
    if coords.shape[1] == 2 and len(points) > max_points:
        per_color, images, extent = _density_map(coords, points, colors, hover, size)
    else:
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
            shown = {f"images[{j}].visible": j == k for j in range(len(images))}  # the density image follows
            buttons.append(dict(label=f"colour: {c}", method="update", args=[{"visible": visible},
                                                                           {"legend.title.text": c, **shown}]))
        fig.update_layout(updatemenus=[dict(buttons=buttons, x=0, xanchor="left", y=1.12, yanchor="top")])
    fig.update_layout(title=title, legend=dict(title=colors[0], itemsizing="constant"), height=600,
                      margin=dict(t=90), dragmode="lasso" if coords.shape[1] == 2 else None)
    if coords.shape[1] == 2:
        fig.update_xaxes(showticklabels=False, title=None)
        fig.update_yaxes(showticklabels=False, title=None, scaleanchor="x")
    if images:  # the image covers the data extent: the axes start there, not at the sample's
        fig.update_layout(images=images, xaxis_range=extent[:2], yaxis_range=extent[2:])
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
