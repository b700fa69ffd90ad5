"""The colours and marker symbols every figure draws with, in one place: colour-blind safe.

    from figures.palette import PALETTE, colour, symbol, style
    colour(k), symbol(k)           # the k-th category's colour and marker symbol
    style(k)                       # dict(color=..., symbol=...) for a marker

PALETTE is Okabe & Ito's (2008) eight colours, distinguishable with each of the common colour-vision
deficiencies (and in greyscale by their lightness); SYMBOLS are filled marker shapes, so a class stays
recognisable by its shape alone. Category k gets PALETTE[k % 8] and SYMBOLS[k % 11] (`styles` also
draws a category named after a shape, "triangle", with that shape): the first 88 categories get
distinct (colour, symbol) pairs, the first 11 distinct symbols. Continuous values use
CONTINUOUS (viridis: perceptually uniform, colour-blind safe).

Importing `figures` also makes TEMPLATE plotly's default ("plotly+lab"): a figure drawn by hand after
the import (a notebook's own go.Scatter per class) cycles through the same colours (colorway) and
symbols (template traces), so every map the workshop shows uses them.
"""
from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

__all__ = ["PALETTE", "NEUTRAL", "SYMBOLS", "SHAPE_SYMBOLS", "CONTINUOUS", "TEMPLATE", "colour", "symbol", "style",
           "styles", "use"]

# Okabe-Ito: orange, sky blue, bluish green, vermillion, blue, reddish purple, yellow, black
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7", "#F0E442", "#000000")
NEUTRAL = "#999999"  # Okabe-Ito's grey: reference elements (baselines, y = x)
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "cross", "triangle-down", "pentagon", "hexagon",
           "triangle-left", "hourglass")
# a category named after a shape is drawn with that shape (the built-in world's classes)
SHAPE_SYMBOLS = {"circle": "circle", "square": "square", "triangle": "triangle-up", "star": "star", "cross": "cross",
                 "diamond": "diamond", "ring": "circle-open", "arrow": "arrow-up", "hexagon": "hexagon",
                 "pentagon": "pentagon", "x": "x"}
CONTINUOUS = "Viridis"
TEMPLATE = "lab"


def colour(k: int) -> str:
    return PALETTE[k % len(PALETTE)]


def symbol(k: int) -> str:
    return SYMBOLS[k % len(SYMBOLS)]


def style(k: int) -> dict:
    """Marker settings of the k-th category."""
    return dict(color=colour(k), symbol=symbol(k))


def styles(categories) -> list[dict]:
    """Marker settings for each of `categories` (in order): the k-th palette colour, and a symbol of its
    own: the shape a category is named after (SHAPE_SYMBOLS), else the next SYMBOLS not yet taken."""
    names = [str(c).strip().lower() for c in categories]
    taken = {SHAPE_SYMBOLS[n] for n in names if n in SHAPE_SYMBOLS}
    free = [s for s in SYMBOLS if s not in taken] or list(SYMBOLS)
    out, j = [], 0
    for k, n in enumerate(names):
        if n in SHAPE_SYMBOLS:
            shape = SHAPE_SYMBOLS[n]
        else:
            shape, j = free[j % len(free)], j + 1
        out.append(dict(color=colour(k), symbol=shape))
    return out


def _template() -> go.layout.Template:
    t = go.layout.Template()
    t.layout.colorway = PALETTE
    t.layout.colorscale.sequential = CONTINUOUS.lower()
    # several template traces of one type are cycled through: the k-th scatter trace gets the k-th symbol
    t.data.scatter = [go.Scatter(marker_symbol=s) for s in SYMBOLS]
    t.data.scattergl = [go.Scattergl(marker_symbol=s) for s in SYMBOLS]
    t.data.scatter3d = [go.Scatter3d(marker_symbol=s) for s in ("circle", "square", "diamond", "cross", "x")]
    return t


def use() -> None:
    """Make the lab's palette plotly's default template (done on `import figures`)."""
    pio.templates[TEMPLATE] = _template()
    pio.templates.default = f"plotly+{TEMPLATE}"
