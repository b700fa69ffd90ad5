"""Image grids as plotly figures (so they live in the same HTML report as the charts).

    fig = image_grid([img0, "photo.jpg", ...], titles=["cat", "dog", ...], cols=8)
"""
from __future__ import annotations

import base64
import io

import plotly.graph_objects as go
from PIL import Image

from lab.core.images import load_rgb_image

__all__ = ["thumbnail", "image_grid"]


def thumbnail(item, size: int = 128) -> str:
    """A path, PIL image or array as a PNG data URI no larger than size x size (small in the HTML)."""
    img = load_rgb_image(item).copy()
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def image_grid(images, titles=None, cols: int = 8, title: str | None = None, cell_px: int = 120) -> go.Figure:
    """Images (paths, PIL images or HxWx3 uint8 arrays) in a grid, each with its caption above it
    (also on hover). The grid is one mosaic picture: one PNG in the HTML, however many cells."""
    images = [load_rgb_image(im) for im in images]
    if not images:
        return go.Figure(layout={"title": (title or "") + " (no images)"})
    titles = [str(t) for t in titles] if titles is not None else [""] * len(images)
    cols = max(1, min(cols, len(images)))
    rows = -(-len(images) // cols)
    # The mosaic is stored at the pictures' own resolution (never above cell_px) and drawn
    # cell_px wide: each stored pixel spans `zoom` screen pixels (small PNG, sharp enough).
    side = min(cell_px, max(max(im.size) for im in images))
    zoom = cell_px / side
    pad, caption = 4 / zoom, (18 if any(titles) else 0) / zoom  # around each picture, and above it
    cell_w, cell_h = side + 2 * pad, side + 2 * pad + caption
    mosaic = Image.new("RGB", (round(cols * cell_w), round(rows * cell_h)), "white")
    centres = []
    for k, img in enumerate(images):
        scale = side / max(img.size)
        if scale != 1:
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
        x0, y0 = (k % cols) * cell_w + pad, (k // cols) * cell_h + pad + caption
        mosaic.paste(img, (round(x0 + (side - img.width) / 2), round(y0 + (side - img.height) / 2)))
        centres.append((x0 + side / 2, y0 + side / 2))
    buf = io.BytesIO()
    mosaic.save(buf, format="PNG")
    source = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    xs, ys = zip(*centres)
    fig = go.Figure([go.Image(source=source, hoverinfo="skip"),
                     go.Scatter(x=xs, y=ys, mode="markers", hovertext=titles, hoverinfo="text", showlegend=False,
                                marker=dict(size=cell_px, symbol="square", opacity=0))])
    fig.update_layout(
        title=title, height=round(rows * cell_h * zoom) + (70 if title else 30), width=round(cols * cell_w * zoom) + 20,
        margin=dict(l=10, r=10, t=60 if title else 20, b=10), plot_bgcolor="white",
        xaxis=dict(visible=False, range=[0, mosaic.width]),
        yaxis=dict(visible=False, range=[mosaic.height, 0], scaleanchor="x"),
        annotations=[dict(x=x, y=y - side / 2 - pad, text=t, showarrow=False, yanchor="bottom", font_size=10)
                     for (x, y), t in zip(centres, titles) if t])
    return fig
