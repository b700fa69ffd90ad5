"""Embedding explorer: a map of image embeddings linked both ways to an image grid.

    from widgets.embedding_explorer import EmbeddingExplorer
    EmbeddingExplorer(model="lab-vit-tiny", dataset="shapeworld", n=2000)   # in JupyterLab
    EmbeddingExplorer(dataset="folder", data_root="photos/", n=0)           # every image of a folder
    EmbeddingExplorer.from_arrays(x, coords, points, data, model="lab-vit-tiny")  # precomputed, e.g. 1M points

Lasso or box select points -> their images in the grid; click a point -> its image and nearest
neighbours; type a prompt -> it is placed in the map (star) and its nearest images are shown and
highlighted; the dropdown recolours by any label column. The logic is `select`, `click`, `query`,
`recolor` and `view` (plain methods over `lab.studies.maps`), which the tests call as the callbacks would.
A query's star, its label and the rings round its nearest images are layout shapes, not traces: drawn
above the WebGL points (a trace would hide under them), set in one relayout that redraws no point.

`from_arrays` opens the explorer on what is already computed, encoding and fitting nothing: x (N, D)
the model's embeddings, coords (N, 2) their map, points the point table (N rows with `item`, the
dataset index of each row's image, and `class`; `em.point_table` makes it) and data the dataset
whose `source(item)` gives the thumbnails. A query is placed at the weighted mean of its nearest
points' positions (`em.place_by_neighbours`).

Above DENSITY_ABOVE points (figures.maps) the map is a density image of all points with at most
SAMPLE_POINTS of them drawn on top, and the page never receives all N:
- a lasso or box selection is tested against all N coordinates here in the kernel, in data space
  (`rows_in_lasso`, `rows_in_box`, from the selector plotly sends): also the points not drawn, also
  where no drawn point lies (plotly reports a selection to every trace, with or without points in it);
  a new selection replaces the last (shift-adding regions is for maps below the threshold);
- zoom or pan (the axes' ranges) redraws the drawn points from those inside the view (`view`), so
  zooming in shows the real points; the density image stays as it is.
"""
from __future__ import annotations

import html

import ipywidgets as w
import numpy as np
import pandas as pd
from plotly.callbacks import BoxSelector, LassoSelector

import lab
from lab.studies import maps as em
from lab.data import load_dataset
from lab.errors import BadInput

from figures.images import thumbnail
from figures.maps import DENSITY_ABOVE, SAMPLE_POINTS, column_scale, point_layer, sample_rows, scatter_map

from ._display import LabWidget
from ._figure import FigureWidget

__all__ = ["GRID_MAX", "EmbeddingExplorer", "rows_in_lasso", "rows_in_box"]

GRID_MAX = 48  # thumbnails shown for a selection
# a query's marks: layout shapes (drawn above plotly's WebGL points, and moved without redrawing them),
# sized in pixels around their anchor (y up); a ring per nearest image, a star and its label at the prompt
_STAR = "M0,12 L3,4 L11,4 L5,-2 L7,-10 L0,-5 L-7,-10 L-5,-2 L-11,4 L-3,4 Z"
_PIXELS = dict(xref="x", yref="y", xsizemode="pixel", ysizemode="pixel")


def rows_in_box(coords: np.ndarray, xrange, yrange) -> np.ndarray:
    """Rows of `coords` (N, 2) inside the box xrange x yrange (ends included, either order)."""
    (x0, x1), (y0, y1) = sorted(xrange), sorted(yrange)
    x, y = coords[:, 0], coords[:, 1]
    return np.flatnonzero((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))


def rows_in_lasso(coords: np.ndarray, xs, ys) -> np.ndarray:
    """Rows of `coords` (N, 2) inside the polygon (xs, ys) (closed implicitly; even-odd rule, as plotly's
    lasso). Points in its bounding box are sorted by y once; each edge then flips the parity of the
    points in its y-span left of it, so a million points and a few hundred edges take milliseconds."""
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)  # (V,) each
    if len(xs) < 3:
        return np.array([], dtype=np.int64)
    box = rows_in_box(coords, (xs.min(), xs.max()), (ys.min(), ys.max()))
    order = np.argsort(coords[box, 1], kind="stable")
    rows, px, py = box[order], coords[box[order], 0], coords[box[order], 1]  # (M,) each, ascending y
    inside = np.zeros(len(rows), dtype=bool)
    for x0, y0, x1, y1 in zip(xs, ys, np.roll(xs, -1), np.roll(ys, -1)):
        if y0 == y1:
            continue  # a horizontal edge crosses no horizontal ray
        a, b = np.searchsorted(py, sorted((y0, y1)), side="left")  # points with min(y) <= y < max(y)
        crossing = x0 + (py[a:b] - y0) * (x1 - x0) / (y1 - y0)
        inside[a:b] ^= px[a:b] < crossing
    return np.sort(rows[inside])


def _marks(nearest: np.ndarray, where, text: str) -> list[dict]:
    """The shapes of a query: rings at `nearest` (k, 2), a star at `where` (2,) labelled `text`."""
    x, y = float(where[0]), float(where[1])
    return [dict(type="circle", **_PIXELS, xanchor=float(a), yanchor=float(b), x0=-7, x1=7, y0=-7, y1=7, name="nearest",
                 line=dict(color="black", width=2)) for a, b in nearest.tolist()] + [
        dict(type="path", **_PIXELS, xanchor=x, yanchor=y, path=_STAR, name="query", fillcolor="black",
             line=dict(color="white", width=1)),
        dict(type="line", **_PIXELS, xanchor=x, yanchor=y, x0=-1, x1=1, y0=0, y1=0, name="query", line=dict(width=0),
             label=dict(text=text, textposition="middle", textangle=0, yanchor="bottom", padding=12,
                        font=dict(size=13, color="black")))]


class EmbeddingExplorer(LabWidget):
    """A thin ipywidgets shell; state: `points` (the point table), `selection` (rows), `neighbours`."""

    def __init__(self, model: str = "lab-vit-tiny", dataset: str = "shapeworld", data_root: str = "", n: int = 2000,
                 method: str = "umap", color: str = "class", n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0,
                 split: str = "all"):
        clip = lab.load_model(model)
        data = load_dataset(dataset, data_root, split, n, seed)  # n=0: every image of the split
        points, x = em.point_table(data, clip.encode_images(data, progress=False))  # x: (N, D)
        self.projection = em.project(x, method, 2, n_neighbors, min_dist, seed=seed)
        self._start(clip, data, x, points, self.projection.coords, self.projection.place, color)

    @classmethod
    def from_arrays(cls, x: np.ndarray, coords: np.ndarray, points: pd.DataFrame, data, model="lab-vit-tiny",
                    color: str = "class") -> "EmbeddingExplorer":
        """An explorer over precomputed arrays (see the module docstring); `model`: a name or a loaded
        model, the one that made x (queries are encoded by it)."""
        x, coords = np.asarray(x, dtype=np.float32), np.asarray(coords, dtype=np.float32)  # (N, D), (N, 2)
        if x.ndim != 2 or coords.shape != (len(x), 2):
            raise BadInput(f"from_arrays: x must be (N, D) embeddings and coords (N, 2) their map positions; "
                             f"got x {x.shape} and coords {coords.shape}")
        if len(points) != len(x):
            raise BadInput(f"from_arrays: points has {len(points)} rows for {len(x)} embeddings; pass one row per "
                             "embedding (em.point_table(dataset, emb) makes the table)")
        lacking = [c for c in ("item", "class", color) if c not in points]
        if lacking:
            raise BadInput(f"from_arrays: points lacks column(s) {lacking}: `item` (the dataset index of each row's "
                             f"image, for its thumbnail), `class` (its caption) and the colour column {color!r}")
        self = cls.__new__(cls)
        self.projection = None  # the map came ready-made: queries are placed among their nearest points
        self._start(lab.load_model(model) if isinstance(model, str) else model, data, x, points.reset_index(drop=True),
                    coords, lambda q: em.place_by_neighbours(x, coords, q), color)
        return self

    def _start(self, model, data, x: np.ndarray, points: pd.DataFrame, coords: np.ndarray, place, color: str):
        """place: query embeddings (M, D) -> their map positions (M, 2)."""
        self.model, self.data, self.x, self.points = model, data, x, points  # x: (N, D)
        self.coords, self._place = coords, place  # coords: (N, 2)
        self.large = len(points) > DENSITY_ABOVE  # a density image + sampled points, selection in data space
        self.selection = self.neighbours = None
        self._picked: dict[int, list[int]] = {}  # trace index -> rows selected in that trace
        self._scale = self._seen = None  # the colour column's scale; the last selector handled
        self.figure = FigureWidget()
        self.color_box = w.Dropdown(options=[c for c in points.columns if c not in ("label", "item")],
                                    value=color, description="colour by")
        self.query_box = w.Text(placeholder="a prompt, e.g. a red circle", description="query",
                                continuous_update=False)  # a value change = the user pressed enter
        self.grid = w.HTML()
        self.detail = w.HTML()
        self.color_box.observe(lambda change: self.recolor(change["new"]), "value")
        self.query_box.observe(lambda change: self.query(change["new"]), "value")
        self.recolor(color)
        self.ui = w.VBox([w.HBox([self.color_box, self.query_box]), self.figure, self.detail, self.grid])

    # -- logic (what the callbacks call) ----------------------------------------------------------

    def recolor(self, column: str):
        """Redraw the points coloured by `column`; the map itself is not recomputed."""
        fresh = scatter_map(self.coords, self.points, column, hover=self._hover(column),
                            title=f"{self.model.name}: {len(self.points):,} images")
        with self.figure.batch_update():
            self.figure.data = []
            self.figure.add_traces(fresh.data)
            self.figure.layout = fresh.layout
        if self.large:
            self._scale = column_scale(self.points[column])
            self.figure.layout.on_change(lambda layout, xrange, yrange: self.view(xrange, yrange),
                                         "xaxis.range", "yaxis.range")
        self._listen(self.figure.data)
        self._picked = {}

    def view(self, xrange, yrange) -> np.ndarray:
        """A large map shown over xrange x yrange: redraw its points from those inside (at most
        SAMPLE_POINTS, the same priority as the first sample, so zooming in only adds points) -> rows drawn."""
        if not self.large or xrange is None or yrange is None:
            return np.array([], dtype=np.int64)
        rows = sample_rows(self.coords, self.points, SAMPLE_POINTS, view=(*xrange, *yrange))
        layer = point_layer(self.coords, self.points, self.color_box.value, rows, self._hover(self.color_box.value),
                            scale=self._scale)
        self.figure.data = []  # a query's marks stay: they are shapes
        self.figure.add_traces(layer)
        self._listen(self.figure.data)
        return rows

    def select(self, rows) -> pd.DataFrame:
        """Show the images of point-table rows `rows` in the grid; returns their table rows."""
        self.selection = em.select(self.points, rows)
        self.grid.value = self._grid(self.selection.index[:GRID_MAX],
                                     [str(c) for c in self.selection["class"][:GRID_MAX]],
                                     f"{len(self.selection):,} selected" + (
                                         f" (first {GRID_MAX} shown)" if len(self.selection) > GRID_MAX else ""))
        return self.selection

    def click(self, row: int, k: int = 8) -> pd.DataFrame:
        """A point's image and its k nearest neighbours in the full embedding space."""
        idx, sims = em.nearest(self.x, self.x[row:row + 1], k + 1)
        keep = idx[0] != row  # the point itself is not its own neighbour
        rows, sims = idx[0][keep][:k], sims[0][keep][:k]
        self.neighbours = self.points.iloc[rows].assign(similarity=sims)
        self.detail.value = self._grid([row, *rows], [f"clicked: {self.points['class'][row]}"] + [
            f"{c} ({s:.2f})" for c, s in zip(self.neighbours["class"], self.neighbours["similarity"])],
            "clicked point and its nearest neighbours")
        return self.neighbours

    def query(self, text: str, k: int = 12) -> pd.DataFrame | None:
        """Place a prompt in the map (star) and show + highlight its k nearest images."""
        if not text.strip():
            return None
        q = self.model.encode_texts([text], progress=False)  # (1, D)
        if q.shape[1] != self.x.shape[1]:
            raise BadInput(f"the query's embedding has {q.shape[1]} dimensions, the map's {self.x.shape[1]}: "
                             f"{self.model.name} did not make these embeddings; pass the model that did")
        idx, sims = em.nearest(self.x, q, k)
        where = self._place(q)[0]
        self.neighbours = self.points.iloc[idx[0]].assign(similarity=sims[0])
        self.grid.value = self._grid(idx[0], [f"{c} ({s:.2f})" for c, s in zip(self.neighbours["class"], sims[0])],
                                     f"nearest to “{html.escape(text)}”")
        self.figure.layout.shapes = _marks(self.coords[idx[0]], where, text)  # one relayout: no trace redrawn
        return self.neighbours

    # -- plumbing ----------------------------------------------------------------------------------

    def _hover(self, column: str) -> list[str]:
        return list(dict.fromkeys(["class", column, "item"]))

    def _listen(self, traces):
        """Attach the callbacks to new point traces (plotly reports a selection to every trace)."""
        for trace in traces:
            trace.on_selection(self._on_region if self.large else self._on_selection)
            trace.on_deselect(self._on_deselect)
            trace.on_click(self._on_click)

    def _rows_of(self, trace, point_inds) -> list[int]:
        return [int(trace.customdata[i]) for i in point_inds]

    def _on_selection(self, trace, points, selector):
        self._picked[points.trace_index] = self._rows_of(trace, points.point_inds)
        self.select(sorted(r for rows in self._picked.values() for r in rows))

    def _on_region(self, trace, points, selector):
        """A large map: the selected region against every point (once per selection, not per trace)."""
        if selector is self._seen:
            return
        self._seen = selector
        if isinstance(selector, LassoSelector):
            self.select(rows_in_lasso(self.coords, selector.xs, selector.ys))
        elif isinstance(selector, BoxSelector):
            self.select(rows_in_box(self.coords, selector.xrange, selector.yrange))

    def _on_deselect(self, trace, points):
        self._picked = {}
        self.select([])

    def _on_click(self, trace, points, state):
        if points.point_inds and trace.customdata is not None:
            self.click(self._rows_of(trace, points.point_inds[:1])[0])

    def _grid(self, rows, captions, title: str) -> str:
        cells = "".join(f"<figure style='margin:2px;text-align:center;font-size:11px'>"
                        f"<img src='{thumbnail(self.data.source(int(self.points['item'][r])), 96)}' width=96>"
                        f"<figcaption>{html.escape(c)}</figcaption></figure>" for r, c in zip(rows, captions))
        return f"<b>{title}</b><div style='display:flex;flex-wrap:wrap'>{cells}</div>"
