"""The dataset protocol (see lab.data) and the simplest dataset: a list of files."""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import pandas as pd


@runtime_checkable
class Dataset(Protocol):
    classes: list[str]

    def __len__(self) -> int: ...

    def source(self, i: int): ...

    def content_key(self, i: int) -> str | None: ...

    @property
    def labels(self) -> pd.DataFrame: ...


class FileList:
    """Unlabelled image files, in the given order."""

    classes: list[str] = []

    def __init__(self, paths: Sequence[str]):
        self.paths = [str(p) for p in paths]

    def __len__(self):
        return len(self.paths)

    def source(self, i: int) -> str:
        return self.paths[i]

    def content_key(self, i: int) -> None:
        return None

    @property
    def labels(self) -> pd.DataFrame:
        return pd.DataFrame({"path": self.paths, "label": -1})


class Subset:
    """Items `indices` of a dataset, as a dataset."""

    def __init__(self, dataset, indices, name: str):
        self.dataset, self.indices, self.name = dataset, np.asarray(indices, dtype=int), name
        self.classes = dataset.classes

    def __len__(self):
        return len(self.indices)

    def source(self, i):
        return self.dataset.source(int(self.indices[i]))

    def content_key(self, i):
        return self.dataset.content_key(int(self.indices[i]))

    @property
    def labels(self) -> pd.DataFrame:
        return self.dataset.labels.iloc[self.indices].reset_index(drop=True)
