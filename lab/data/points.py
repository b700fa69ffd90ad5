"""Precomputed points as a dataset: embeddings already made (by the lab, a vector store, another
pipeline) with their labels and image files, so a map of a million images starts from the
embeddings instead of a million decodes.

    save_points("photos.npz", emb, labels, paths, classes, model="ViT-B-32/openai")
    data = load_dataset("points", root="photos.npz")       # or PointFile("photos.npz")
    x = points_embeddings(data)                              # (N, D) float32, in the dataset's order

The file is a NumPy .npz: emb (N, D) float32, label (N,) int (-1: none), path (N,) str (the image
of each point, for thumbnails), classes (C,) str, and model (what made the embeddings: text
prompts must come from the same model for a map's queries to mean anything). No pickles: loading
runs no code from the file.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BadInput
from ._protocol import Subset

__all__ = ["PointFile", "save_points", "points_embeddings"]

FIELDS = ("emb", "label", "path", "classes", "model")


def save_points(file: str | os.PathLike, emb: np.ndarray, labels, paths, classes, model: str = "") -> Path:
    """Write a points file (see the module docstring) -> its path."""
    emb = np.asarray(emb, dtype=np.float32)
    labels, paths = np.asarray(labels, dtype=np.int64), np.asarray([str(p) for p in paths])
    if emb.ndim != 2 or not len(emb) == len(labels) == len(paths):
        raise BadInput(f"points need emb (N, D) with one label and one path per row; got emb {emb.shape}, "
                       f"{len(labels)} labels, {len(paths)} paths")
    file = Path(file)
    np.savez(file, emb=emb, label=labels, path=paths, classes=np.asarray([str(c) for c in classes]),
             model=np.asarray(model))
    return file


class PointFile:
    """A points file as a lab dataset: source(i) is the image file of point i."""

    def __init__(self, file: str | os.PathLike):
        self.file = Path(file)
        if not self.file.is_file():
            raise BadInput(f"points file {self.file} does not exist; write one with lab.data.points.save_points")
        with np.load(self.file, allow_pickle=False) as z:
            missing = [f for f in FIELDS if f not in z.files]
            if missing:
                raise BadInput(f"{self.file} lacks {missing}; a points file holds {list(FIELDS)} "
                               "(lab.data.points.save_points writes one)")
            self.emb, self.paths = z["emb"].astype(np.float32, copy=False), z["path"]
            self._labels = pd.DataFrame({"path": self.paths, "label": z["label"]})
            self.classes, self.model = [str(c) for c in z["classes"]], str(z["model"])
        self.name = f"points:{self.file}"

    def __len__(self):
        return len(self.emb)

    def source(self, i: int) -> str:
        return str(self.paths[i])

    def content_key(self, i: int) -> None:
        return None

    @property
    def labels(self) -> pd.DataFrame:
        return self._labels


def points_embeddings(dataset) -> np.ndarray:
    """The stored embeddings (N, D) of a PointFile or of a Subset of one, in the dataset's order."""
    if isinstance(dataset, PointFile):
        return dataset.emb
    if isinstance(dataset, Subset) and isinstance(dataset.dataset, PointFile):
        return dataset.dataset.emb[dataset.indices]
    raise BadInput(f"{getattr(dataset, 'name', type(dataset).__name__)} holds images, not stored embeddings: "
                   "encode it with the model (clip.encode_images) or use dataset='points'")
