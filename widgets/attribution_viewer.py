"""Attribution viewer: pick an image (dataset or upload), type a prompt (and optionally a second one
to compare side by side), choose model, method and layer; see the overlays and scores; slide the
opacity (re-blended, not recomputed).

    from widgets.attribution_viewer import AttributionViewer
    AttributionViewer()            # in JupyterLab
The logic is `lab.studies.attribution.attribute` + `figures.attribution.overlay`; tests drive the widget
values and read `result`, `status` and the rendered HTML.
"""
from __future__ import annotations

import html

import ipywidgets as w

from lab.studies import attribution as at
from lab.errors import LabError

from figures.attribution import overlay

from ._display import png_data_url
from ._picker import ImagePicker

__all__ = ["AttributionViewer"]


class AttributionViewer(ImagePicker):
    """A thin ipywidgets shell over `lab.studies.attribution.attribute`."""

    def __init__(self, models=("lab-vit-tiny", "lab-rn-tiny"), dataset: str = "shapeworld", data_root: str = "",
                 n: int = 100):
        super().__init__(models, dataset, data_root, n)
        self.result = None
        self._quiet = False
        self.method_box = w.Dropdown(description="method")
        self.layer_box = w.Text(value="layer4", description="layer", continuous_update=False)
        self.start_box = w.IntText(value=-1, description="start block")
        first = self.dataset.classes[self.dataset.labels["label"][0]]
        self.prompt = w.Text(value=f"a photo of a {first}.", description="prompt", continuous_update=False)
        self.prompt2 = w.Text(value="", placeholder="second prompt to compare (optional)", description="compare",
                              continuous_update=False)
        self.opacity = w.FloatSlider(0.5, min=0, max=1, step=0.05, description="opacity", continuous_update=False)
        self.view = w.HTML()
        self.message = w.HTML()
        self.model_box.observe(lambda _: self._model_changed(), "value")
        for box in (self.method_box, self.layer_box, self.start_box, self.prompt, self.prompt2):
            box.observe(lambda _: self.refresh(), "value")
        self.opacity.observe(lambda _: self.draw(), "value")
        self.ui = w.VBox([w.HBox([self.model_box, self.method_box, self.layer_box, self.start_box]),
                          w.HBox([self.index, self.upload]), w.HBox([self.prompt, self.prompt2]),
                          self.opacity, self.message, self.view])
        self._model_changed()

    def _model_changed(self):
        self._quiet = True  # the new options reset the method: one refresh below, not two
        methods = at.list_methods(self.model())
        self.method_box.options = methods
        self.method_box.value = methods[0]
        self._quiet = False
        self.layer_box.layout.display = None if at.has_gradcam(self.model()) else "none"
        self.start_box.layout.display = None if at.is_vit(self.model()) else "none"
        self.refresh()

    def prompts(self) -> list[str]:
        return [p for p in (self.prompt.value.strip(), self.prompt2.value.strip()) if p]

    def refresh(self):
        """Recompute the maps for the current values; on bad input keep the last result and say why."""
        if self.method_box.value is None or self._quiet:
            return
        try:
            if not self.prompts():
                raise LabError("type a prompt")
            layer = self.layer_box.value.strip() if at.has_gradcam(self.model()) else None
            self.result = at.attribute(self.model(), [self.image()], self.prompts(), method=self.method_box.value,
                                       layer=layer or None, start_layer=self.start_box.value)
        except (LabError, OSError, ValueError, IndexError) as e:
            self.status = f"error: {e}"
            self.message.value = f"<span style='color:#b00'>{html.escape(self.status)}</span>"
            return
        self.status = f"{self.model_box.value} / {self.result.method}: " + ", ".join(
            f"“{p}” {s:.2f}" for p, s in zip(self.result.texts, self.result.scores[0]))
        self.message.value = html.escape(self.status)
        self.draw()

    def draw(self):
        """Blend the current maps at the current opacity (no recomputation)."""
        if self.result is None:
            return
        view = self.result.views[0]
        panels = [("image", view)] + [(f"{p} ({s:.2f})", overlay(view, m, self.opacity.value))
                                      for p, s, m in zip(self.result.texts, self.result.scores[0], self.result.maps[0])]
        self.view.value = "<div style='display:flex;gap:8px'>" + "".join(
            f"<figure style='margin:0;text-align:center'><img src='{png_data_url(a)}' width=192 "
            f"style='image-rendering:pixelated'><figcaption>{html.escape(c)}</figcaption></figure>"
            for c, a in panels) + "</div>"
