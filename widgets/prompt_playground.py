"""Prompt playground: pick an image (from a dataset or an upload), edit class names and templates,
and watch the zero-shot probabilities and the per-template breakdown update; switch models.

    from widgets.prompt_playground import PromptPlayground
    PromptPlayground()            # in JupyterLab: displays itself
The logic is `lab.studies.zeroshot.classify_image`; this class only wires widgets to it (tests drive
the widget values and read `classes`, `per_template`, `status`).
"""
from __future__ import annotations

import ipywidgets as w

from lab.data import prompts
from lab.studies import zeroshot
from lab.data import dataset_spec, default_classnames
from lab.errors import LabError

from figures.images import thumbnail
from figures.zeroshot import probability_bars

from ._figure import FigureWidget
from ._picker import ImagePicker

__all__ = ["PromptPlayground"]


def _lines(text: str) -> list[str]:
    return [s.strip() for s in text.splitlines() if s.strip()]


class PromptPlayground(ImagePicker):
    """A thin ipywidgets shell over `lab.studies.zeroshot.classify_image`."""

    def __init__(self, models=("lab-vit-tiny", "lab-rn-tiny"), dataset: str = "shapeworld", data_root: str = "",
                 n: int = 100, templates: str | None = None):
        super().__init__(models, dataset, data_root, n)
        names, _ = default_classnames(dataset, self.dataset)
        self.classes = self.per_template = None
        self.names_box = w.Textarea("\n".join(names), description="classes", layout=w.Layout(height="160px"))
        self.templates_box = w.Textarea("\n".join(prompts.templates(templates or dataset_spec(dataset).templates)),
                                        description="templates", layout=w.Layout(height="160px", width="420px"))
        self.preview = w.HTML()
        self.message = w.HTML()
        self.figure = FigureWidget(probability_bars([1.0], ["…"]))
        self.table = w.HTML()
        for box in (self.model_box, self.names_box, self.templates_box):
            box.observe(lambda _: self.refresh(), "value")
        self.ui = w.VBox([w.HBox([self.model_box, self.index, self.upload]),
                          w.HBox([self.preview, self.names_box, self.templates_box]),
                          self.message, self.figure, self.table])
        self.refresh()

    def refresh(self):
        """Recompute for the current widget values; on bad input keep the last result and say why."""
        try:
            names, temps = _lines(self.names_box.value), prompts.templates(_lines(self.templates_box.value))
            if not names:
                raise LabError("enter at least one class name, one per line")
            image = self.image()
            classes, per_template = zeroshot.classify_image(self.model(), image, names, temps)
        except (LabError, OSError, ValueError) as e:
            self.status = f"error: {e}"
            self.message.value = f"<span style='color:#b00'>{self.status}</span>"
            return
        self.classes, self.per_template = classes, per_template
        self.status = f"{self.model_box.value}: {classes['name'][0]} ({classes['probability'][0]:.1%})"
        self.message.value = self.status
        self.preview.value = f"<img src='{thumbnail(image, 160)}' width=160>"
        fresh = probability_bars(classes["probability"], list(classes["name"]), title=self.status,
                                 link=self.model().link)
        with self.figure.batch_update():
            self.figure.data[0].x, self.figure.data[0].y = fresh.data[0].x, fresh.data[0].y
            self.figure.data[0].text = fresh.data[0].text
            self.figure.layout.title.text, self.figure.layout.height = self.status, fresh.layout.height
            self.figure.layout.xaxis.title.text = fresh.layout.xaxis.title.text
        self.table.value = per_template.to_html(index=False, float_format="{:.1%}".format)
