"""FairFace for class-design audits (users bring the data; the lab downloads nothing and builds
nothing that identifies people): the dataset's label CSV (`file, age, gender, race, service_test`)
and its images, as a lab dataset whose labels carry the groups the audit compares.

    ds = FairFace("/data/fairface", csv="fairface_label_val.csv")   # paths relative to the root
    ds.labels[["age", "gender", "race"]]                             # groups; label is the race-gender class
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ..errors import BadInput
from ._protocol import FileList

__all__ = ["COLUMNS", "LABELS_FILE", "label_spec", "people_classes", "FairFace"]

COLUMNS = ["file", "age", "gender", "race"]
LABELS_FILE = Path(__file__).parent / "fairface_labels.json"  # the paper's label set (see label_spec)


def label_spec(file: str | os.PathLike = LABELS_FILE) -> dict:
    """The paper's FairFace label set as data: races, genders, prompt templates, the flagged (crime and
    non-human) words by kind and the remedy words (lab.studies.class_design turns it into label sets)."""
    return json.loads(Path(file).read_text())


def people_classes(spec: dict) -> list[str]:
    """The race x gender class names, in the label set's order ('<race> <gender>', lower case)."""
    return [f"{r} {g}".replace("_", " ").lower() for r in spec["races"] for g in spec["genders"]]


class FairFace(FileList):
    """Images listed in a FairFace label CSV under `root`. label: index of '<race> <gender>' in the
    order of the label set's classes (people_classes, then the flagged words; -1 for values outside it)."""

    def __init__(self, root: str | os.PathLike, csv: str = "fairface_label_val.csv", n: int = 0):
        self.root = Path(root)
        table_file = self.root / csv
        if not table_file.exists():
            raise BadInput(f"FairFace label file {table_file} does not exist; pass root= the folder holding "
                           f"{csv} and the image folders it names")
        table = pd.read_csv(table_file)
        missing = [c for c in COLUMNS if c not in table.columns]
        if missing:
            raise BadInput(f"{table_file} lacks the columns {missing}; FairFace's CSV has {COLUMNS + ['service_test']}")
        table = table.head(n) if n else table
        spec = label_spec()
        names = people_classes(spec) + [w for ws in spec["flagged"].values() for w in ws]
        people = [f"{r} {g}".replace("_", " ").lower() for r, g in zip(table["race"], table["gender"])]
        self.classes = names
        self._labels = table.assign(path=[str(self.root / f) for f in table["file"]],
                                    label=[names.index(p) if p in names else -1 for p in people]).reset_index(drop=True)
        super().__init__(self._labels["path"].tolist())
        self.name = f"fairface:{table_file}"

    @property
    def labels(self) -> pd.DataFrame:
        return self._labels
