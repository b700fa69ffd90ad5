"""Head explorer: a head x layer heat map of what each attention head writes into a ViT's image
embedding (TextSpan's variance explained by its texts); click a head to see its texts, where it
writes them on a few images, and the zero-shot accuracy it costs when mean-ablated (Gandelsman,
Efros & Steinhardt, ICLR 2024; notebook 07 studies the same).

    from widgets.head_explorer import HeadExplorer
    HeadExplorer()                                   # in JupyterLab: lab-vit-tiny, 100 ShapeWorld images
    HeadExplorer(model="lab-vit-literate", last=2, m=8, n=300)   # the last 2 layers, 8 texts per head
The logic is `lab.studies.decomposition` (decompose_dataset, decompose with tokens, head_ablations) and
`lab.studies.textspan` (describe_heads over world_pool or your `pool` of texts); the widget only reads
them. `select(layer, head)` is what a click on a cell calls; tests call it, or send the click message
plotly's page sends, and read `texts`, `ablation`, `maps` and the rendered HTML.

Per head: `Decomposition.head_map` projects each image token's part of that head (Decomposition.tokens) on the
head's first text's embedding, a patch-grid map per image; `heat` scales it to the picture for
`figures.attribution.overlay`.
"""
from __future__ import annotations

import html

import ipywidgets as w
import numpy as np
import pandas as pd
from PIL import Image

import lab
from lab.core.families import family_of
from lab.data import load_dataset, prompts
from lab.errors import BadInput
from lab.studies import attribution as at, decomposition as dc, textspan as ts, zeroshot

from figures.attribution import overlay
from figures.decomposition import head_heatmap

from ._display import LabWidget, png_data_url
from ._figure import FigureWidget

__all__ = ["HeadExplorer", "cell_head", "heat"]


def cell_head(x: str, y: str) -> tuple[int, int]:
    """A heat-map cell's axis labels ("H2", "L3", as plotly reports a click) -> (layer, head)."""
    return int(str(y).lstrip("L")), int(str(x).lstrip("H"))


def heat(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, rows, cols) maps -> (N, H, W) bilinear to size (H, W), each min-max scaled to [0, 1] (the
    scale `overlay` takes: red where the head writes most along the text, blue least)."""
    out = []
    for m in np.asarray(maps, np.float32):
        big = np.asarray(Image.fromarray(m).resize((size[1], size[0]), Image.BILINEAR), np.float32)
        lo, hi = big.min(), big.max()
        out.append((big - lo) / max(hi - lo, 1e-12))
    return np.stack(out) if out else np.zeros((0, *size), np.float32)


_CELL = "style='text-align:left;padding:1px 12px 1px 0'"


def _table(texts: pd.DataFrame) -> str:
    """A head's TextSpan table as HTML: rank, text, cumulative variance explained, gain."""
    rows = "".join(f"<tr><td {_CELL}>{r.rank}</td><td {_CELL}>{html.escape(str(r.text))}</td>"
                   f"<td {_CELL}>{r.variance_explained:.1%}</td><td {_CELL}>+{r.gain:.1%}</td></tr>"
                   for r in texts.itertuples())
    header = "".join(f"<th {_CELL}>{h}</th>" for h in ("#", "text", "variance explained (cumulative)", "gain"))
    return (f"<table class='head-texts' style='border-collapse:collapse;width:auto'><thead><tr>{header}</tr></thead>"
            f"<tbody>{rows}</tbody></table>")


class HeadExplorer(LabWidget):
    """A thin ipywidgets shell over lab.studies.decomposition and textspan; state after a click: `head`
    (layer, head), `texts` (its TextSpan table), `ablation` (its head_ablations row), `maps` (N, H, W)."""

    def __init__(self, model: str = "lab-vit-tiny", dataset: str = "shapeworld", data_root: str = "", n: int = 100,
                 last: int | None = None, m: int = 5, n_images: int = 6, pool: list[str] | None = None,
                 template: str = "a photo of a {}.", seed: int = 0, alpha: float = 0.5):
        self.model = lab.load_model(model) if isinstance(model, str) else model
        self.data = load_dataset(dataset, data_root, "test", n, seed)
        self.labels = self.data.labels["label"].to_numpy()
        self.pool = list(pool) if pool else ts.world_pool()
        self.pool_emb = self.model.encode_texts(self.pool, progress=False)  # (M, D), cached
        self.weights = zeroshot.class_weights(self.model, prompts.class_prompts(self.data.classes, [template]))  # (C, D)
        self.d = dc.decompose_dataset(self.model, self.data)  # parts (N, K, D), kept in the model's cache
        self.spans = ts.describe_heads(self.d, self.pool_emb, self.pool, last=last or self.d.layers, m=m)
        self.ablations = dc.head_ablations(self.d, self.weights, self.labels).set_index("part")
        shown = [self.data.source(i) for i in range(min(n_images, len(self.data)))]
        self.shown = dc.decompose(self.model, shown, tokens=True)  # + tokens (n_images, L, H, T, D)
        _, self.views = at.model_inputs(self.model, shown)  # (n_images, H, W, 3) uint8, as the model sees them
        visual = self.model.module.visual
        self.grid = family_of(visual).grid(visual)  # (rows, cols) of patch tokens, for any decomposable tower
        self.alpha = alpha
        self.head = self.texts = self.ablation = self.maps = None

        self.figure = FigureWidget(head_heatmap(
            self.spans, "variance_explained",
            f"{self.model.name}: variance of each head explained by {m} texts (TextSpan) · click a head"))
        self.figure.data[0].on_click(self._on_click)
        self.message = w.HTML(html.escape(
            f"{self.model.name} on {len(self.data)} {dataset} images, base zero-shot accuracy {self.base:.0%}: "
            "click a head for its texts, its maps and its ablation."))
        self.detail = w.HTML()
        self.view = w.HTML()
        self.ui = w.VBox([self.message, self.figure, self.detail, self.view])

    @property
    def base(self) -> float:
        """Zero-shot accuracy with no part ablated."""
        row = self.ablations.iloc[0]
        return float(row["accuracy"] + row["drop"])

    def select(self, layer: int, head: int):
        """Show a head: its TextSpan texts, its accuracy cost when mean-ablated, its maps on the images."""
        texts = self.spans[(self.spans["layer"] == layer) & (self.spans["head"] == head)]
        if texts.empty:
            raise BadInput(f"no TextSpan for L{layer}.H{head}: the map covers layers "
                           f"{self.spans['layer'].min()}-{self.spans['layer'].max()}, heads 0-{self.d.heads - 1}")
        label = f"L{layer}.H{head}"
        self.head, self.texts = (layer, head), texts.drop(columns=["layer", "head"]).reset_index(drop=True)
        self.ablation = self.ablations.loc[label]
        top = self.texts["text"][0]
        direction = self.pool_emb[self.pool.index(top)]  # (D,)
        self.maps = heat(self.shown.head_map(layer, head, direction, self.grid), self.views.shape[1:3])
        self.detail.value = (
            f"<b>{label}</b>: mean-ablating it takes zero-shot accuracy from {self.base:.1%} to "
            f"{self.ablation['accuracy']:.1%} (<b class='head-drop'>drop {100 * self.ablation['drop']:.1f} points</b>)"
            f"<br><b>Its texts (TextSpan)</b>{_table(self.texts)}")
        captions = [self.data.classes[c] for c in self.labels[:len(self.maps)]]
        cells = "".join(
            f"<figure style='margin:2px;text-align:center;font-size:11px'><img src='{png_data_url(v)}' width=96 "
            f"style='image-rendering:pixelated'><img src='{png_data_url(overlay(v, h, self.alpha))}' width=96 "
            f"style='image-rendering:pixelated'><figcaption>{html.escape(c)}</figcaption></figure>"
            for v, h, c in zip(self.views, self.maps, captions))
        self.view.value = (f"<b>Where {label} writes “{html.escape(top)}”</b> (each patch's part of the head on the "
                           f"text's embedding; red most, blue least)<div style='display:flex;flex-wrap:wrap'>{cells}</div>")
        rows, cols = self.figure.data[0].y, self.figure.data[0].x
        r, c = list(rows).index(f"L{layer}"), list(cols).index(f"H{head}")
        self.figure.layout.shapes = [dict(type="rect", xref="x", yref="y", x0=c - .5, x1=c + .5, y0=r - .5, y1=r + .5,
                                          line=dict(color="red", width=3), name="selected")]
        return self.texts

    def _on_click(self, trace, points, state):
        if points.xs:
            self.select(*cell_head(points.xs[0], points.ys[0]))
