"""Class-folder datasets: `<root>/<class>/<image>` (torchvision's ImageFolder layout, and the
layout of ImageNet val and its variants once sorted into WNID folders)."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..errors import BadInput
from ._protocol import FileList

__all__ = ["IMAGE_EXTENSIONS", "list_images", "ImageFolder"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def list_images(root: str | os.PathLike, recursive: bool = True) -> list[str]:
    """Image files under a folder, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise BadInput(f"{root} is not a folder")
    pattern = "**/*" if recursive else "*"
    return sorted(str(p) for p in root.glob(pattern) if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))  # .ipynb_checkpoints, ._x


class ImageFolder(FileList):
    """Images in one sub-folder per class. `class_names` maps folder names (e.g. WNIDs) to
    readable names; classes are sorted by folder name."""

    def __init__(self, root: str | os.PathLike, class_names: dict[str, str] | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise BadInput(f"dataset folder {self.root} does not exist; expected <root>/<class>/<image> files")
        self.folders = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not self.folders:
            raise BadInput(f"{self.root} has no class sub-folders; expected <root>/<class>/<image> files")
        self.classes = [(class_names or {}).get(f, f) for f in self.folders]
        rows = []
        for label, folder in enumerate(self.folders):
            for path in list_images(self.root / folder):
                rows.append((path, label, folder))
        if not rows:
            raise BadInput(f"{self.root} has class folders but no image files ({', '.join(IMAGE_EXTENSIONS)})")
        self._labels = pd.DataFrame(rows, columns=["path", "label", "folder"])
        super().__init__(self._labels["path"].tolist())

    @property
    def labels(self) -> pd.DataFrame:
        return self._labels
