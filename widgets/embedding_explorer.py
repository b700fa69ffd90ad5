"""Embedding explorer: a map of image embeddings linked both ways to an image grid.

    from widgets.embedding_explorer import EmbeddingExplorer
    EmbeddingExplorer(model="lab-vit-tiny", dataset="shapeworld", n=2000)   # in JupyterLab

Lasso or box select points -> their images in the grid; click a point -> its image and nearest
neighbours; type a prompt -> it is placed in the map (star) and its nearest images are shown and
highlighted; the dropdown recolours by any label column. The logic is `select`, `click`, `query`
and `recolor` (plain methods over `lab.studies.maps`), which the tests call as the callbacks would.
"""
from __future__ import annotations

import html

import ipywidgets as w
import pandas as pd

import lab
from lab.studies import maps as em
from lab.data import load_dataset

from figures.images import thumbnail
from figures.maps import scatter_map

from ._display import LabWidget
from ._figure import FigureWidget

__all__ = ["GRID_MAX", "EmbeddingExplorer"]

GRID_MAX = 48  # thumbnails shown for a selection


class EmbeddingExplorer(LabWidget):
    """A thin ipywidgets shell; state: `points` (the point table), `selection` (rows), `neighbours`."""

    def __init__(self, model: str = "lab-vit-tiny", dataset: str = "shapeworld", data_root: str = "", n: int = 2000,
                 method: str = "umap", color: str = "class", n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0):
        self.model = lab.load_model(model)
        self.data = load_dataset(dataset, data_root, "test", n, seed)
        self.points, self.x = em.point_table(self.data, self.model.encode_images(self.data, progress=False))  # x: (N, D)
        self.projection = em.project(self.x, method, 2, n_neighbors, min_dist, seed=seed)
        self.coords = self.projection.coords  # (N, 2)
        self.selection = self.neighbours = None
        self._picked: dict[int, list[int]] = {}  # trace index -> rows selected in that trace
        self.figure = FigureWidget()
        self.color_box = w.Dropdown(options=[c for c in self.points.columns if c not in ("label", "item")],
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
        fresh = scatter_map(self.coords, self.points, column, hover=["class", column, "item"],
                            title=f"{self.model.name}: {len(self.points)} images")
        with self.figure.batch_update():
            self.figure.data = []
            self.figure.add_traces(fresh.data)
            self.figure.layout = fresh.layout
        for trace in self.figure.data:
            trace.on_selection(self._on_selection)
            trace.on_deselect(self._on_deselect)
            trace.on_click(self._on_click)
        self._picked = {}

    def select(self, rows) -> pd.DataFrame:
        """Show the images of point-table rows `rows` in the grid; returns their table rows."""
        self.selection = em.select(self.points, rows)
        self.grid.value = self._grid(self.selection.index[:GRID_MAX],
                                     [str(c) for c in self.selection["class"][:GRID_MAX]],
                                     f"{len(self.selection)} selected" + (
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
        idx, sims = em.nearest(self.x, q, k)
        where = self.projection.place(q)[0]
        self.neighbours = self.points.iloc[idx[0]].assign(similarity=sims[0])
        with self.figure.batch_update():
            self.figure.data = [t for t in self.figure.data if t.name not in ("query", "nearest")]
            self.figure.add_scatter(x=self.coords[idx[0], 0], y=self.coords[idx[0], 1], mode="markers", name="nearest",
                                    marker=dict(size=12, color="rgba(0,0,0,0)", line=dict(width=2, color="black")))
            self.figure.add_scatter(x=[where[0]], y=[where[1]], mode="markers+text", text=[text], name="query",
                                    textposition="top center", marker=dict(symbol="star", size=18, color="black"))
        self.grid.value = self._grid(idx[0], [f"{c} ({s:.2f})" for c, s in zip(self.neighbours["class"], sims[0])],
                                     f"nearest to “{html.escape(text)}”")
        return self.neighbours

    # -- plumbing ----------------------------------------------------------------------------------

    def _rows_of(self, trace, point_inds) -> list[int]:
        return [int(trace.customdata[i]) for i in point_inds]

    def _on_selection(self, trace, points, selector):
        self._picked[points.trace_index] = self._rows_of(trace, points.point_inds)
        self.select(sorted(r for rows in self._picked.values() for r in rows))

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
