"""ImageNet-1k in its usual on-disk layout: `<root>/val/<wnid>/<image>` (or `<root>/<wnid>/…`),
labelled with the standard class indices (WNIDs sorted, as every ImageNet tool orders them) and
CLIP's curated class names.

    ds = ImageNet("/data/imagenet")                 # a lab dataset; ds.classes = 1000 curated names
The WNID list comes from timm's ImageNet tables, the names from open_clip; neither is retyped here.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..errors import BadInput
from ._protocol import FileList
from .folder import list_images

__all__ = ["WnidFolders", "ImageNet"]


class WnidFolders(FileList):
    """Images in one folder per WNID, labelled by the WNID's position in `wnids`. Folders outside
    `wnids` are an error, or skipped with others="skip" (ImageNet val restricted to a subset)."""

    def __init__(self, root: str | os.PathLike, wnids: list[str], classes: list[str], name: str,
                 others: str = "error"):
        self.root, self.name, self.classes = Path(root), name, list(classes)
        if not self.root.is_dir():
            raise BadInput(f"{name}: folder {self.root} does not exist; expected {self.root}/<wnid>/<image> "
                           f"with WNID folder names like {wnids[0]}")
        index = {w: i for i, w in enumerate(wnids)}
        folders = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if others == "skip":
            folders = [f for f in folders if f in index]
        unknown = [f for f in folders if f not in index]
        if unknown or not folders:
            raise BadInput(f"{name}: {self.root} should hold one folder per WNID (like {wnids[0]}); "
                           + (f"found {len(unknown)} others, e.g. {unknown[:3]}" if unknown else
                              "found none (ImageNet's val images ship flat: sort them into WNID folders first, "
                              "e.g. with the devkit's ground truth)"))
        rows = [(p, index[f], f) for f in folders for p in list_images(self.root / f)]
        if not rows:
            raise BadInput(f"{name}: the WNID folders under {self.root} hold no images")
        self._labels = pd.DataFrame(rows, columns=["path", "label", "wnid"])
        super().__init__(self._labels["path"].tolist())

    @property
    def labels(self) -> pd.DataFrame:
        return self._labels


def ImageNet(root: str | os.PathLike, split: str = "val") -> WnidFolders:
    """ImageNet-1k `split` under `root` (`root/split/<wnid>` if present, else `root/<wnid>`)."""
    from . import prompts
    root = Path(root)
    folder = root / split if (root / split).is_dir() else root
    return WnidFolders(folder, prompts.imagenet_wnids(), prompts.classnames("imagenet"), f"imagenet/{split}")
