"""The plotly FigureWidget every lab widget draws with, loading plotly's widget code once per page.

plotly's FigureWidget is an anywidget whose front-end code is a 5 MB ES module sent with every
figure. anywidget gives each model 2 s to load and initialize that code; when JupyterLab restores a
notebook on a running kernel, every figure of the notebook loads at once, each parsing its own copy,
and on a busy machine they miss the deadline ("[anywidget] Failed to initialize model."). Here the
module a figure loads is a small stub; the bundle travels as a separate trait and is imported once
per page, shared by every figure.

plotly also puts a figure's data and layout in the widget's state only when the figure itself is
displayed; inside a widget's VBox it never is, and later changes travel as one-off messages. A page
re-opened on the running kernel asks for the state and got an empty map: `get_state` here hands out
the current figure.

A lasso or box selection stays on the map as an outline whose hit area (plotly.js draws it with
pointer-events: all, to let a click make the selection editable) covers everything inside it: a
click on a point inside a selection reached the outline, not the point, and nothing happened. `_css`
lets clicks through the outlines of the lab's figures (not other plotly figures of the page), so a
point in a selection can be clicked (the explorer then shows its neighbours).

A selection reaches every trace's callbacks, and plotly.py echoes it to the page as each trace's
`selectedpoints`: one restyle per trace, each a redraw of the whole figure (on a 20,000-point WebGL
map in headless chromium, most of a second each), queued before what the callbacks change in other
widgets (the explorer's thumbnails came 7 s after the lasso). Here the echo is one batched update,
sent after the callbacks' own messages.
"""
from __future__ import annotations

import functools
from copy import deepcopy
from pathlib import Path

import plotly
import plotly.graph_objects as go
import traitlets

_BUNDLE = Path(plotly.__file__).parent / "package_data" / "widgetbundle.js"
_STUB = """
const KEY = Symbol.for("clip-lab:plotly-widget-bundle");
function plotlyWidget(model) {  // one import of plotly's widget bundle per page
  globalThis[KEY] ??= (async () => {
    const url = URL.createObjectURL(new Blob([model.get("_plotly_esm")], { type: "text/javascript" }));
    try { return (await import(url)).default; } finally { URL.revokeObjectURL(url); }
  })();
  return globalThis[KEY];
}
export default () => {
  let ready;
  return {
    initialize(ctx) {
      ready = plotlyWidget(ctx.model).then((factory) => {
        const widget = factory();
        widget.initialize(ctx);
        return widget;
      });
      return ready;
    },
    async render(ctx) {
      ctx.el.classList.add("clip-lab-figure");  // the scope of _css
      return (await ready).render(ctx);
    },
  };
};
"""


class FigureWidget(go.FigureWidget):
    """go.FigureWidget whose page-side code is shared by all figures (see the module docstring)."""

    _esm = _STUB
    _css = ".clip-lab-figure .selectionlayer path { pointer-events: none !important; }"
    _plotly_esm = traitlets.Unicode().tag(sync=True)

    def get_state(self, key=None, drop_defaults=False):
        state = super().get_state(key, drop_defaults)
        if key is None and hasattr(self, "_data"):  # a page asking for the whole widget: the current figure
            for name, value in (("_widget_data", self._data), ("_widget_layout", self._layout_obj._props)):
                to_json = self.trait_metadata(name, "to_json", self._trait_to_json)
                state[name] = to_json(deepcopy(value), self)
        return state

    @traitlets.observe("_js2py_pointsCallback")
    def _handler_js2py_pointsCallback(self, change):
        """plotly.py's handler, its selectedpoints echoes batched into one update (see the module docstring)."""
        with self.batch_update():
            super()._handler_js2py_pointsCallback(change)

    @traitlets.default("_plotly_esm")
    def _bundle(self):  # in the model's first state: the page imports it while initializing the figure
        return _bundle_text()


@functools.cache
def _bundle_text() -> str:
    return _BUNDLE.read_text(encoding="utf-8")  # 5 MB, read once per process
