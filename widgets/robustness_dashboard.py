"""Robustness dashboard: pick models and a shift; the effective-robustness plot and the per-shift
bars update; click a point to see that model's worst-hit classes and example mistakes.

    from widgets.robustness_dashboard import RobustnessDashboard
    RobustnessDashboard()                 # computes the built-in study (small n), or pass results=
The logic is `lab.studies.robustness` (run_suite, er_points, worst_classes); tests drive `models_box`,
`shift_box` and `inspect(model)`.
"""
from __future__ import annotations

import html

import ipywidgets as w
import numpy as np

import lab
from lab.studies import robustness as rb
from lab.data.shapeworld import world_shift_sets

from figures.images import thumbnail
from figures.robustness import effective_robustness_plot, shift_bars

from ._display import LabWidget
from ._figure import FigureWidget

__all__ = ["RobustnessDashboard"]


class RobustnessDashboard(LabWidget):
    def __init__(self, models=("lab-vit-tiny", "lab-rn-tiny"), n_per_shift: int = 200, results: dict | None = None):
        if results is None:
            clips = [lab.load_model(m) for m in models]
            sets, pairs, _ = world_shift_sets(n_per_shift, corruptions=[])
            classifiers = rb.world_classifiers(clips)
            table, predictions = rb.run_suite(classifiers, sets)
            results = {"sets": sets, "pairs": pairs, "table": table, "predictions": predictions}
        self.sets, self.pairs = results["sets"], results["pairs"]
        self.table, self.predictions = results["table"], results["predictions"]
        names = list(dict.fromkeys(self.table["model"]))
        self.models_box = w.SelectMultiple(options=names, value=tuple(names), description="models",
                                           layout=w.Layout(height="140px", width="360px"))
        self.shift_box = w.Dropdown(options=list(self.pairs), description="shift")
        self.er = FigureWidget()
        self.bars = FigureWidget()
        self.detail = w.HTML()
        self.selected = None
        self.models_box.observe(lambda _: self.update(), "value")
        self.shift_box.observe(lambda _: self.update(), "value")
        self.ui = w.VBox([w.HBox([self.models_box, self.shift_box]), self.er, self.detail, self.bars])
        self.update()

    def chosen(self):
        return self.table[self.table["model"].isin(self.models_box.value)]

    def update(self):
        """Redraw both plots for the chosen models and shift (the line needs two baselines)."""
        table, shift = self.chosen(), self.shift_box.value
        self.selected, self.detail.value = None, ""  # the last click's details belonged to another view
        fresh_er = effective_robustness_plot(rb.er_points(table, self.pairs, shift), shift)
        fresh_bars = shift_bars(table[table["shift"].isin([shift, self.pairs[shift]])])
        for widget, fresh in ((self.er, fresh_er), (self.bars, fresh_bars)):
            with widget.batch_update():
                widget.data = []
                widget.add_traces(fresh.data)
                widget.layout = fresh.layout
        for trace in self.er.data:
            if trace.customdata is not None:
                trace.on_click(lambda tr, points, state: points.point_inds and self.inspect(tr.customdata[0][0]))

    def inspect(self, model: str, k: int = 5):
        """The model's worst-hit classes on the current shift and a few of its mistakes there."""
        shift = self.shift_box.value
        self.selected = rb.worst_classes(self.predictions, self.sets, self.pairs, model, shift, k)
        ds, top = self.sets[shift], self.predictions[(model, shift)]
        wrong = np.flatnonzero(~rb.correct_matrix(top, ds.labels)[:, 0] & (top[:, 0] >= 0))[:12]
        cells = "".join(f"<figure style='margin:2px;text-align:center;font-size:11px'>"
                        f"<img src='{thumbnail(ds.source(int(i)), 80)}' width=80><figcaption>"
                        f"{html.escape(ds.classes[ds.labels['label'][i]])} → {html.escape(ds.classes[top[i, 0]])}"
                        f"</figcaption></figure>" for i in wrong)
        self.detail.value = (f"<b>{html.escape(model)} on {html.escape(shift)}: worst-hit classes</b>"
                             + self.selected.to_html(float_format="{:.1%}".format)
                             + f"<div style='display:flex;flex-wrap:wrap'>{cells}</div>")
        return self.selected
