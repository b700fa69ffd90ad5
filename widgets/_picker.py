"""What the single-image widgets share: a model dropdown with loaded models kept, and an image
taken from a dataset (slider) or an upload. Subclasses define `refresh()`."""
from __future__ import annotations

import io

import ipywidgets as w
from PIL import Image

import lab
from lab.data import load_dataset

from ._display import LabWidget


class ImagePicker(LabWidget):
    def __init__(self, models, dataset: str, data_root: str, n: int):
        self._models: dict = {}
        self.dataset = load_dataset(dataset, data_root, "test", n)
        self.status = ""
        self.use_upload = False  # True after an upload, False again once the slider moves
        self.model_box = w.Dropdown(options=list(models), description="model")
        self.index = w.IntSlider(0, 0, len(self.dataset) - 1, description="image #", continuous_update=False)
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="upload")
        self.index.observe(lambda _: self._pick(False), "value")
        self.upload.observe(lambda _: self._pick(bool(self.upload.value)), "value")

    def model(self):
        """The chosen model, loaded once per session."""
        name = self.model_box.value
        if name not in self._models:
            self._models[name] = lab.load_model(name)
        return self._models[name]

    def _pick(self, upload: bool):
        self.use_upload = upload
        self.refresh()

    def image(self):
        """The uploaded image while one is there and the slider was not moved since; else the dataset's."""
        if self.use_upload:
            return Image.open(io.BytesIO(bytes(self.upload.value[0]["content"])))
        return self.dataset.source(self.index.value)

    def refresh(self):
        raise NotImplementedError
