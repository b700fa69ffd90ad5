"""Datasets by name, for notebooks and the report: `load_dataset(name, root, split, n, seed)`.

    list_datasets()   # shapeworld, shapeworld-v2 / -sketch / -rendition / -objectnet, imagenet, folder, points
    ds = load_dataset("shapeworld-rendition", split="val", n=500)
    ds = load_dataset("imagenet", root="/data/imagenet", split="test", n=10000)   # held-out half of val
    ds = load_dataset("folder", root="photos/")                                    # <root>/<class>/<image>
    ds = load_dataset("points", root="photos.npz", split="all")   # stored embeddings (lab.data.points)
    names, alt = default_classnames("imagenet", ds)   # curated names, and another wording (or None)

Real datasets with one labelled split (ImageNet val, a class folder) are cut into two disjoint
halves by a seeded permutation: `split="val"` (for choosing prompts) and `split="test"` (held out);
`split="all"` is every image (ShapeWorld, generated rather than a finite folder: its test split).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import BadInput
from . import prompts
from ._protocol import Subset
from .folder import ImageFolder
from .imagenet import ImageNet
from .points import PointFile
from .shapeworld import WorldDataset
from .world import SHAPES


@dataclass(frozen=True)
class DatasetSpec:
    load: Callable  # (spec, root, split, n, seed) -> dataset
    needs_root: bool
    alt_classnames: str | None  # another wording of the class names, for the sensitivity study
    templates: str  # the template set a study starts from
    suite: str | None = None  # ShapeWorld shift suite


def _half(dataset, split: str, n: int, seed: int):
    if split not in ("val", "test", "all"):
        raise BadInput(f"split must be 'val', 'test' or 'all'; got {split!r}")
    order = np.random.default_rng(seed).permutation(len(dataset))
    half = len(order) // 2
    idx = {"val": order[:half], "test": order[half:], "all": order}[split]
    idx = np.sort(idx[:n] if n else idx)
    return Subset(dataset, idx, f"{getattr(dataset, 'name', 'dataset')}/{split}-seed{seed}-n{len(idx)}")


def _shapeworld(spec: DatasetSpec, root: str, split: str, n: int, seed: int):
    if split not in ("val", "test", "all"):
        raise BadInput(f"shapeworld splits for evaluation are 'val', 'test' and 'all'; got {split!r}")
    # generated, not a finite folder: its whole evaluation collection ("all") is the test split
    return WorldDataset("test" if split == "all" else split, n=n or 2000, suite=spec.suite)


def _imagenet(spec: DatasetSpec, root: str, split: str, n: int, seed: int):
    return _half(ImageNet(root), split, n, seed)


def _folder(spec: DatasetSpec, root: str, split: str, n: int, seed: int):
    folder = ImageFolder(root)
    folder.name = f"folder:{root}"
    return _half(folder, split, n, seed)


def _points(spec: DatasetSpec, root: str, split: str, n: int, seed: int):
    return _half(PointFile(root), split, n, seed)


WORLD_SUITES = ["v2", "sketch", "rendition", "objectnet"]  # the suites with a val split (adversarial: test only)
SPECS = {  # a new dataset: one entry (and its loader)
    "shapeworld": DatasetSpec(_shapeworld, False, "shapeworld-synonyms", "shapeworld"),
    **{f"shapeworld-{s}": DatasetSpec(_shapeworld, False, "shapeworld-synonyms", "shapeworld", s) for s in WORLD_SUITES},
    "imagenet": DatasetSpec(_imagenet, True, "imagenet-wordnet", "openai-imagenet"),
    "folder": DatasetSpec(_folder, True, None, "openai-imagenet"),
    "points": DatasetSpec(_points, True, None, "openai-imagenet"),  # root: a points file (lab.data.points)
}


def list_datasets() -> list[str]:
    return list(SPECS)


def dataset_spec(name: str) -> DatasetSpec:
    if name not in SPECS:
        raise BadInput(f"unknown dataset {name!r}; datasets are {list_datasets()}")
    return SPECS[name]


def load_dataset(name: str, root: str = "", split: str = "test", n: int = 0, seed: int = 0):
    """A dataset by name (see module doc). n=0 means every item of the split."""
    spec = dataset_spec(name)
    if spec.needs_root and not root:
        raise BadInput(f"dataset {name!r} needs data_root: the folder holding it")
    return spec.load(spec, root, split, n, seed)


def default_classnames(name: str, dataset) -> tuple[list[str], list[str] | None]:
    """The dataset's class names (curated where the lab has curated ones) and the alternative
    wording its spec names (ImageNet: WordNet's first lemmas; ShapeWorld: the captions' synonyms),
    aligned class by class; None when there is no alternative."""
    alt = dataset_spec(name).alt_classnames
    if alt == "shapeworld-synonyms":
        table = dict(zip(SHAPES, prompts.classnames(alt)))
        return list(dataset.classes), [table[c] for c in dataset.classes]
    return list(dataset.classes), (prompts.classnames(alt) if alt else None)


def dataset_identity(dataset) -> dict:
    """What the manifest records: name, size, classes, and a digest of the item keys (or paths)."""
    h = hashlib.sha256()
    for i in range(len(dataset)):
        h.update(str(dataset.content_key(i) or dataset.source(i)).encode() + b"\n")
    return {"name": getattr(dataset, "name", type(dataset).__name__), "n": len(dataset),
            "classes": len(dataset.classes), "digest": h.hexdigest()[:16]}
