"""ImageNet's distribution shifts in their published folder layouts, as lab datasets.

    ImageNetV2(root)          <root>/<0..999>/<image>         folder names are class indices (ints!)
    ImageNetSketch(root)      <root>/sketch/<wnid>/<image>    (or <root>/<wnid>/...)
    ImageNetR(root), ImageNetA(root)   <root>/<wnid>/<image>  200 WNIDs each: classes = those 200
    imagenet_subset_val(val_root, wnids)   ImageNet val restricted to a subset, relabelled like it
    ObjectNet(root)           <root>/images/<folder>/<image> + <root>/mappings/*.json (ObjectNet's own
                              files): the 113 classes that overlap ImageNet; 2-px border cropped
    imagenet_c(root)          <root>/<corruption>/<severity>/<wnid>/<image> -> {(corruption, severity): dataset}

Every dataset has `classes` (the names its classifier is built over) and labels with `label`
(index into `classes`); ObjectNet also has `correct`: per image, the tuple of class indices that
count as right (a prediction is right if it falls in the mapped set). The R/A WNID lists are read
from clip-benchmark's source (a maintained package), the 1,000 WNIDs from timm, the names from
open_clip; none is retyped here.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import BadInput
from . import prompts
from ._protocol import FileList, Subset
from .folder import list_images
from .imagenet import ImageNet, WnidFolders

__all__ = ["imagenet_r_wnids", "imagenet_a_wnids", "ImageNetV2", "ImageNetSketch", "ImageNetR", "ImageNetA",
           "imagenet_subset_val", "ObjectNet", "imagenet_c", "real_shift_sets"]


@lru_cache(maxsize=None)
def _benchmark_wnids(variable: str) -> tuple[str, ...]:
    spec = importlib.util.find_spec("clip_benchmark.datasets.builder")
    if spec is None:
        raise BadInput("the ImageNet-R/-A class lists come from the clip-benchmark package: pip install clip-benchmark")
    for node in ast.walk(ast.parse(Path(spec.origin).read_text())):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == variable:
            return tuple(sorted(ast.literal_eval(node.value)))
    raise BadInput(f"clip-benchmark no longer defines {variable}; pin clip-benchmark 1.6")


def imagenet_r_wnids() -> list[str]:
    """ImageNet-R's 200 WNIDs, in ImageNet's (sorted) order."""
    return list(_benchmark_wnids("imagenet_r_wnids"))


def imagenet_a_wnids() -> list[str]:
    """ImageNet-A's 200 WNIDs, in ImageNet's (sorted) order."""
    return list(_benchmark_wnids("imagenet_a_wnids"))


def _subset_names(wnids: list[str]) -> list[str]:
    index = {w: i for i, w in enumerate(prompts.imagenet_wnids())}
    names = prompts.classnames("imagenet")
    return [names[index[w]] for w in wnids]


def _inner(root: Path, name: str) -> Path:
    return root / name if (root / name).is_dir() else root


class ImageNetV2(FileList):
    """ImageNetV2 (any variant): one folder per class named by its integer index 0..999."""

    def __init__(self, root: str | os.PathLike):
        self.root, self.name = Path(root), "imagenet-v2"
        if not self.root.is_dir():
            raise BadInput(f"ImageNetV2: folder {self.root} does not exist; expected {self.root}/<0..999>/<image>")
        folders = [d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith(".")]
        bad = [f for f in folders if not f.isdigit() or not 0 <= int(f) < 1000]
        if bad or not folders:
            raise BadInput(f"ImageNetV2: {self.root} should hold folders named 0..999 (class indices); "
                           + (f"found {bad[:3]}" if bad else "found none"))
        rows = [(p, int(f)) for f in sorted(folders, key=int) for p in list_images(self.root / f)]
        self._labels = pd.DataFrame(rows, columns=["path", "label"])  # label = int(folder), never its sort rank
        self.classes = prompts.classnames("imagenet")
        super().__init__(self._labels["path"].tolist())

    @property
    def labels(self) -> pd.DataFrame:
        return self._labels


def ImageNetSketch(root: str | os.PathLike) -> WnidFolders:
    return WnidFolders(_inner(Path(root), "sketch"), prompts.imagenet_wnids(), prompts.classnames("imagenet"),
                       "imagenet-sketch")


def ImageNetR(root: str | os.PathLike) -> WnidFolders:
    wnids = imagenet_r_wnids()
    return WnidFolders(_inner(Path(root), "imagenet-r"), wnids, _subset_names(wnids), "imagenet-r")


def ImageNetA(root: str | os.PathLike) -> WnidFolders:
    wnids = imagenet_a_wnids()
    return WnidFolders(_inner(Path(root), "imagenet-a"), wnids, _subset_names(wnids), "imagenet-a")


def imagenet_subset_val(val_root: str | os.PathLike, wnids: list[str]) -> WnidFolders:
    """ImageNet val restricted to `wnids` and labelled 0..len-1 like the shift it is compared with."""
    root = _inner(Path(val_root), "val")
    return WnidFolders(root, wnids, _subset_names(wnids), f"imagenet-val/{len(wnids)}-class subset", others="skip")


class ObjectNet(FileList):
    """ObjectNet's classes that overlap ImageNet, read through ObjectNet's own mapping files.
    classes: the ImageNet classes the classifier is built over (the union of the mapped sets);
    correct[i]: indices into classes that count as right for image i; 2-px border cropped."""

    MAPPINGS = ("folder_to_objectnet_label.json", "objectnet_to_imagenet_1k.json",
                "pytorch_to_imagenet_2012_id.json", "imagenet_to_label_2012_v2")

    def __init__(self, root: str | os.PathLike, border: int = 2):
        root = _inner(Path(root), "objectnet-1.0")
        meta, images = root / "mappings", root / "images"
        missing = [m for m in self.MAPPINGS if not (meta / m).is_file()]
        if missing or not images.is_dir():
            raise BadInput(f"ObjectNet: expected {images}/<folder>/<image> and ObjectNet's mapping files in {meta} "
                           f"({', '.join(self.MAPPINGS)}); missing: {missing or [str(images)]}")
        folder_to_label = json.loads((meta / self.MAPPINGS[0]).read_text())
        label_to_folder = {v: k for k, v in folder_to_label.items()}
        to_imagenet = json.loads((meta / self.MAPPINGS[1]).read_text())
        pytorch_to_2012 = json.loads((meta / self.MAPPINGS[2]).read_text())
        id2012_to_pytorch = {int(v): int(k) for k, v in pytorch_to_2012.items()}
        name_to_pytorch = {line.strip(): id2012_to_pytorch[i]
                           for i, line in enumerate((meta / self.MAPPINGS[3]).read_text().splitlines())
                           if line.strip() and i in id2012_to_pytorch}
        folder_ids = {}
        for label, names in to_imagenet.items():
            unknown = [n for n in names.split("; ") if n not in name_to_pytorch]
            if label not in label_to_folder or unknown:
                raise BadInput(f"ObjectNet mapping {label!r} -> {names!r} does not resolve (unknown: {unknown}); "
                               f"are the mapping files from the same ObjectNet release?")
            folder_ids[label_to_folder[label]] = sorted(name_to_pytorch[n] for n in names.split("; "))
        self.imagenet_ids = sorted({i for ids in folder_ids.values() for i in ids})  # the classifier's classes
        position = {i: k for k, i in enumerate(self.imagenet_ids)}
        names = prompts.classnames("imagenet")
        self.classes = [names[i] for i in self.imagenet_ids]
        rows = [(p, folder, tuple(position[i] for i in folder_ids[folder]))
                for folder in sorted(folder_ids) if (images / folder).is_dir() for p in list_images(images / folder)]
        if not rows:
            raise BadInput(f"ObjectNet: none of the {len(folder_ids)} mapped folders under {images} holds images")
        self._labels = pd.DataFrame(rows, columns=["path", "folder", "correct"])
        self._labels["label"] = [c[0] for c in self._labels["correct"]]
        self.border, self.name = border, f"objectnet-crop{border}"
        super().__init__(self._labels["path"].tolist())

    @property
    def labels(self) -> pd.DataFrame:
        return self._labels

    def source(self, i: int) -> Image.Image:
        with Image.open(self.paths[i]) as im:
            w, h = im.size
            b = self.border
            return im.convert("RGB").crop((b, b, w - b, h - b))  # ObjectNet's 1-px red border, and a margin

    def content_key(self, i: int) -> str:
        st = os.stat(self.paths[i])
        return f"{self.name}:{os.path.abspath(self.paths[i])}:{st.st_size}:{st.st_mtime_ns}"


def imagenet_c(root: str | os.PathLike) -> dict[tuple[str, int], WnidFolders]:
    """ImageNet-C: {(corruption, severity): dataset} for every <corruption>/<severity> folder present."""
    root = Path(root)
    if not root.is_dir():
        raise BadInput(f"ImageNet-C: folder {root} does not exist; expected {root}/<corruption>/<1..5>/<wnid>/<image>")
    out = {}
    for corruption in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for severity in sorted(d for d in corruption.iterdir() if d.is_dir() and d.name.isdigit()):
            out[(corruption.name, int(severity.name))] = WnidFolders(
                severity, prompts.imagenet_wnids(), prompts.classnames("imagenet"),
                f"imagenet-c/{corruption.name}/{severity.name}")
    if not out:
        raise BadInput(f"ImageNet-C: no <corruption>/<severity> folders under {root}")
    return out


def real_shift_sets(roots: dict, n: int = 0, seed: int = 0) -> tuple[dict, dict]:
    """Real shift sets from folders -> (sets, pairs). roots: any of imagenet (val), imagenetv2,
    imagenet_sketch, imagenet_r, imagenet_a, objectnet; n > 0 subsamples each set (seeded).
    ImageNet-R/-A and ObjectNet are compared with ImageNet val restricted to their classes."""
    builders = {"imagenet": ImageNet, "imagenetv2": ImageNetV2, "imagenet_sketch": ImageNetSketch,
                "imagenet_r": ImageNetR, "imagenet_a": ImageNetA, "objectnet": ObjectNet}
    unknown = set(roots) - set(builders)
    if unknown:
        raise ValueError(f"unknown dataset roots {sorted(unknown)}; known: {list(builders)}")
    if "imagenet" not in roots:
        raise ValueError("the in-distribution set is ImageNet val: give roots['imagenet']")

    def sample(ds):
        if not n or len(ds) <= n:
            return ds
        idx = np.sort(np.random.default_rng(seed).choice(len(ds), n, replace=False))
        return Subset(ds, idx, f"{getattr(ds, 'name', 'dataset')}/n{n}-seed{seed}")

    sets, pairs = {"imagenet": sample(builders["imagenet"](roots["imagenet"]))}, {}
    for key, root in roots.items():
        if key == "imagenet":
            continue
        sets[key] = sample(builders[key](root))
        if key in ("imagenet_r", "imagenet_a", "objectnet"):  # compared with val over the same classes
            if key == "objectnet":
                ids = getattr(sets[key], "dataset", sets[key]).imagenet_ids  # (a Subset wraps the dataset)
                wnids = [prompts.imagenet_wnids()[i] for i in ids]
            else:
                wnids = imagenet_r_wnids() if key == "imagenet_r" else imagenet_a_wnids()
            sets[f"imagenet ({key} classes)"] = sample(imagenet_subset_val(roots["imagenet"], wnids))
            pairs[key] = f"imagenet ({key} classes)"
        else:
            pairs[key] = "imagenet"
    return sets, pairs
