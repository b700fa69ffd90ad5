"""ShapeWorld as lab datasets: a split or shift suite (`WorldDataset`, its `Sample`s), the suite
datasets in their real counterparts' folder layout, class subsets and the shift sets of the
robustness study. The scenes themselves are drawn by lab.data.world (pure drawing, no datasets);
the suites' recipes are in lab.data.suites.

    from lab.data.shapeworld import WorldDataset
    ds = WorldDataset("test", n=2000)              # a lab dataset (see lab.data)
    s = ds.sample(0); s.image, s.labels, s.caption, s.boxes, s.masks
    python -m lab suites materialize --out data/suites --n 200   # every suite as class folders
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from ._protocol import Subset
from .corruptions import CORRUPTIONS
from .suites import SUITES, adversarial_indices, scene_for
from .world import (COLOURS, COUNTS, POSITIONS, SHAPES, SIZES, SPLIT_SEEDS, VERSION, Scene, caption, item_rng,
                    labels_of, render)

__all__ = ["Sample", "make_sample", "WorldDataset", "suite_datasets", "materialize", "contact_sheet", "ClassSubset",
           "world_shift_sets"]


@dataclass
class Sample:
    image: Image.Image
    labels: dict
    caption: str
    boxes: list[tuple]
    masks: list[np.ndarray]


def make_sample(scene: Scene, rng: np.random.Generator, image_size: int = 64) -> Sample:
    img, masks, boxes = render(scene, image_size)
    return Sample(img, labels_of(scene), caption(scene, rng), boxes, masks)


class WorldDataset:
    """A fixed split or shift suite of ShapeWorld as a lab dataset (images rendered on demand).

    task: which label is `label` (shape, colour, size, count, position)."""

    def __init__(self, split: str = "test", n: int = 1000, image_size: int = 64, task: str = "shape",
                 suite: str | None = None, severity: int | None = None, corruption: str | None = None):
        if split not in SPLIT_SEEDS:
            raise KeyError(f"unknown split {split!r}; splits are {list(SPLIT_SEEDS)}")
        if suite is not None and suite not in SUITES:
            raise KeyError(f"unknown shift suite {suite!r}; suites are {list(SUITES)}")
        if (suite == "corruptions") != (corruption is not None):
            raise ValueError("corrupted images need suite='corruptions' together with corruption=<type>")
        if corruption is not None:
            if corruption not in CORRUPTIONS or severity not in (1, 2, 3, 4, 5):
                raise ValueError(f"corruption must be one of {CORRUPTIONS} and severity 1..5; "
                                 f"got {corruption!r}, {severity!r}")
        self.split, self.n, self.image_size, self.task = split, n, image_size, task
        self.suite, self.severity, self.corruption = suite, severity, corruption
        self._scene_for = scene_for
        self.name = f"{VERSION}/{split}" + (f"/{suite}" if suite else "") + (
            f"/{corruption}-{severity}" if corruption else "")
        self._scenes = [self.scene(i) for i in range(n)]
        self._labels = pd.DataFrame([labels_of(s) for s in self._scenes])
        self.classes = self.task_classes(task, self.suite)
        self._labels["label"] = self.task_labels(task)

    @staticmethod
    def task_classes(task: str, suite: str | None = None) -> list[str]:
        if task == "shape":
            return list(SUITES[suite].get("shapes", SHAPES)) if suite else list(SHAPES)
        return {"colour": list(COLOURS), "size": list(SIZES), "count": COUNTS, "position": POSITIONS}[task]

    def task_labels(self, task: str) -> np.ndarray:
        """Class index of every item for a task (-1 where it does not apply, e.g. the position
        of a scene with several objects or a shape outside the suite's class subset)."""
        classes = self.task_classes(task, self.suite)
        values = [COUNTS[s.count - 1] if task == "count" else
                  (POSITIONS[s.cells[0]] if s.count == 1 else None) if task == "position" else
                  getattr(s, task) for s in self._scenes]
        return np.array([classes.index(v) if v in classes else -1 for v in values])

    def scene(self, i: int) -> Scene:
        return self._scene_for(self.split, i, self.suite, self.corruption, self.severity)

    def __len__(self):
        return self.n

    def sample(self, i: int) -> Sample:
        return make_sample(self._scenes[i], item_rng(SPLIT_SEEDS[self.split], i, 7), self.image_size)

    def source(self, i: int) -> Image.Image:
        return render(self._scenes[i], self.image_size, with_masks=False)[0]

    def content_key(self, i: int) -> str:
        """Names the pixels: split, suite and the scene's own parameters (so a rebuilt suite or a
        changed recipe never reuses an old embedding)."""
        scene = hashlib.sha1(repr(self._scenes[i]).encode()).hexdigest()[:16]
        return f"{self.name}/{self.image_size}/{scene}"

    @property
    def labels(self) -> pd.DataFrame:
        return self._labels


def suite_datasets(n: int, split: str = "test", image_size: int = 64, corruptions=None, severities=range(1, 6),
                   corruption_n: int | None = None):
    """{relative folder: WorldDataset} for the clean split and every shift suite, in the folder
    layout of their real counterparts (corruptions/<type>/<severity>/ as in ImageNet-C)."""
    out = {split: WorldDataset(split, n, image_size)}
    for suite in SUITES:
        if suite == "corruptions":
            for c in corruptions or CORRUPTIONS:
                for s in severities:
                    out[f"corruptions/{c}/{s}"] = WorldDataset(split, corruption_n or n, image_size, suite=suite,
                                                               corruption=c, severity=s)
        elif suite == "adversarial":
            out[suite] = WorldDataset(split, min(n, len(adversarial_indices())), image_size, suite=suite)
        else:
            out[suite] = WorldDataset(split, n, image_size, suite=suite)
    return out


def materialize(dataset, folder: str | Path) -> Path:
    """Write a WorldDataset as class folders (<folder>/<shape>/<index>.png) plus labels.csv."""
    folder = Path(folder)
    rows = []
    for i in range(len(dataset)):
        shape = dataset.labels.loc[i, "shape"]
        path = folder / shape / f"{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        dataset.source(i).save(path)
        rows.append({"path": str(path.relative_to(folder)), **dataset.labels.loc[i].to_dict()})
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)
    return folder


def contact_sheet(n: int = 8, scale: int = 2):
    """One row of `n` test images per suite (a corruption row at severity 3), labelled: a PIL image."""
    rows = {"clean": WorldDataset("test", n)}
    for suite in SUITES:
        if suite == "corruptions":
            rows["gaussian noise 3"] = WorldDataset("test", n, suite=suite, corruption="gaussian_noise", severity=3)
        else:
            rows[suite] = WorldDataset("test", n, suite=suite)
    side, label_w = 64 * scale, 130
    sheet = Image.new("RGB", (label_w + n * (side + 4), len(rows) * (side + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (name, ds) in enumerate(rows.items()):
        draw.text((6, r * (side + 4) + side // 2 - 6), name, fill="black")
        for i in range(n):
            sheet.paste(ds.source(i).resize((side, side), Image.NEAREST), (label_w + i * (side + 4), r * (side + 4)))
    return sheet


class ClassSubset(Subset):
    """The items of a dataset whose class is in `classes`, relabelled to index `classes` (the
    in-distribution counterpart of a shift that uses a class subset, like ImageNet-R's 200)."""

    def __init__(self, dataset, classes: list[str]):
        names = np.array(dataset.classes, dtype=object)[dataset.labels["label"].to_numpy()]
        keep = np.flatnonzero(np.isin(names, classes))
        super().__init__(dataset, keep, f"{getattr(dataset, 'name', 'dataset')}/{len(classes)}-class subset")
        self.classes = list(classes)
        self._labels = dataset.labels.iloc[keep].reset_index(drop=True)
        self._labels["label"] = [self.classes.index(n) for n in names[keep]]

    @property
    def labels(self) -> pd.DataFrame:
        return self._labels


def world_shift_sets(n: int = 500, corruption_n: int = 100, corruptions=None, severities=range(1, 6)):
    """ShapeWorld's clean test split and shift suites -> (sets {name: dataset}, pairs {shift: ID set
    name}, corruption sets {(type, severity): dataset}). Shifts over a class subset (rendition,
    adversarial) are compared with the clean split restricted to the same classes."""
    raw = suite_datasets(n, corruptions=corruptions, severities=severities, corruption_n=corruption_n)
    clean = raw.pop("test")
    sets = {"clean": clean}
    pairs = {}
    for name, ds in list(raw.items()):
        if name.startswith("corruptions/"):
            continue
        sets[name] = ds
        if list(ds.classes) == list(clean.classes):
            pairs[name] = "clean"
        else:
            key = f"clean ({len(ds.classes)} classes)"
            sets.setdefault(key, ClassSubset(clean, ds.classes))
            pairs[name] = key
    corrupted = {(k.split("/")[1], int(k.split("/")[2])): ds for k, ds in raw.items() if k.startswith("corruptions/")}
    return sets, pairs, corrupted
