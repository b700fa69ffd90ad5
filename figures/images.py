"""Image grids as plotly figures (so they live in the same HTML report as the charts).

    fig = image_grid([img0, "photo.jpg", ...], titles=["cat", "dog", ...], cols=8)
"""
from __future__ import annotations

import base64
import io

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from lab.images import load_rgb_image


def thumbnail(item, size: int = 128) -> str:
    """A path, PIL image or array as a PNG data URI no larger than size x size (small in the HTML)."""
    img = load_rgb_image(item).copy()
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def image_grid(images, titles=None, cols: int = 8, title: str | None = None, cell_px: int = 120) -> go.Figure:
    """Images (paths, PIL images or HxWx3 uint8 arrays) in a grid, each with its caption (also on hover)."""
    images = [thumbnail(im, cell_px) for im in images]
    if not images:
        return go.Figure(layout={"title": (title or "") + " (no images)"})
    titles = list(titles) if titles is not None else [""] * len(images)
    cols = max(1, min(cols, len(images)))
    rows = -(-len(images) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.01,
                        vertical_spacing=min(0.3 / rows, 0.08))
    for k, (im, t) in enumerate(zip(images, titles)):
        fig.add_trace(go.Image(source=im, hovertemplate=f"{t}<extra></extra>"), row=k // cols + 1, col=k % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=10)
    fig.update_layout(title=title, height=rows * (cell_px + 30) + (60 if title else 20),
                      width=cols * cell_px + 40, margin=dict(l=10, r=10, t=60 if title else 30, b=10))
    return fig
