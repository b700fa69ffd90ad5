"""Caption datasets for retrieval: images plus captions, each caption pointing at its image.

    cs = world_captions(n_images=1000)       # ShapeWorld: 5 captions per image from the world's grammar
    cs = flickr30k("/data/flickr30k")         # Karpathy test split: <root>/flickr30k_test_karpathy.txt + images
    cs = mscoco("/data/coco")                 # Karpathy test split: <root>/coco_test_karpathy.json + val2014/
    cs.images (a lab dataset), cs.captions (list), cs.image_of (T,), cs.positives() {"exact": (T, N) bool, ...}

The annotation files are the ones CLIP_benchmark uses: Flickr's text file (a header line, then
`<name>.jpg,<caption>` per line; captions may hold commas) and COCO's JSON (COCO's caption format:
`images` with `id` / `file_name`, `annotations` with `image_id` / `caption`).
World captions carry the attributes each one states (`stated`), so a caption's "consistent"
positives are every image whose scene has all of them (the grammar repeats; "a red circle." is
true of many images), beside the "exact" positive (the image it was written for).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BadInput
from ._protocol import FileList

__all__ = ["VERSION", "STATED", "CaptionSet", "world_captions", "read_flickr_annotations", "read_coco_annotations",
           "flickr30k", "mscoco"]

VERSION = "shapeworld-captions-1"  # the world captions' recipe (seed stream 11, 5 per image)
STATED = ["shape", "colour", "count", "size", "position"]


@dataclass
class CaptionSet:
    """Images, captions and which image each caption was written for. `stated`: per caption, the
    attribute values it names (NaN where not named), or None for real data."""
    name: str
    images: object
    captions: list[str]
    image_of: np.ndarray
    stated: pd.DataFrame | None = None
    image_attributes: pd.DataFrame | None = field(default=None, repr=False)

    def __post_init__(self):
        self.image_of = np.asarray(self.image_of, dtype=int)
        if len(self.captions) != len(self.image_of):
            raise ValueError("one image index per caption")

    def positives(self) -> dict[str, np.ndarray]:
        """{"exact": (T, N) bool[, "consistent": (T, N) bool]}."""
        exact = self.image_of[:, None] == np.arange(len(self.images))[None, :]
        out = {"exact": exact}
        if self.stated is not None:
            consistent = np.ones_like(exact)
            for attr in self.stated.columns:
                named = self.stated[attr].notna().to_numpy()
                if not named.any():
                    continue
                truth = self.image_attributes[attr].to_numpy(dtype=object)
                said = self.stated[attr].to_numpy(dtype=object)
                consistent &= ~named[:, None] | (said[:, None] == truth[None, :])
            out["consistent"] = consistent | exact
        return out

    def named(self) -> list[str]:
        """Per caption, which optional attributes it names ('size+position', or 'shape+colour only')."""
        if self.stated is None:
            raise ValueError("only world captions record the attributes they state")
        extra = [a for a in ("size", "position") if a in self.stated]
        return ["+".join(a for a in extra if pd.notna(row[a])) or "shape+colour only"
                for _, row in self.stated.iterrows()]


def world_captions(n_images: int = 1000, split: str = "test", per_image: int = 5, image_size: int = 64) -> CaptionSet:
    """ShapeWorld images of `split` with `per_image` captions each from the world's grammar."""
    from .world import POSITIONS, SPLIT_SEEDS, item_rng, stated_caption
    from .shapeworld import WorldDataset
    images = WorldDataset(split, n_images, image_size)
    texts, owners, stated = [], [], []
    for i in range(n_images):
        scene = images._scenes[i]
        for j in range(per_image):
            text, said = stated_caption(scene, item_rng(SPLIT_SEEDS[split], i, 11, j))
            texts.append(text)
            owners.append(i)
            stated.append(said)
    truth = pd.DataFrame([{"shape": s.shape, "colour": s.colour, "count": s.count, "size": s.size,
                           "position": POSITIONS[s.cells[0]] if s.count == 1 else None} for s in images._scenes])
    return CaptionSet(f"{VERSION}/{split}-n{n_images}x{per_image}", images, texts, np.array(owners),
                      pd.DataFrame(stated, columns=STATED), truth)


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise BadInput(f"{what}: {path} does not exist (CLIP_benchmark's annotation files: "
                       f"github.com/mehdidc/retrieval_annotations)")
    return path


def read_flickr_annotations(file: str | os.PathLike) -> dict[str, list[str]]:
    """CLIP_benchmark's Flickr file: a header line, then `<name>.jpg,<caption>` -> {image: [captions]}
    in file order (captions may contain commas: the split is at the first '.jpg,')."""
    out: dict[str, list[str]] = {}
    lines = Path(file).read_text(encoding="utf-8").splitlines()[1:]
    for n, line in enumerate(lines, start=2):
        line = line.strip()
        if not line:
            continue
        if ".jpg," not in line:
            raise BadInput(f"{file} line {n}: expected '<name>.jpg,<caption>', got {line[:60]!r}")
        image, text = line.split(".jpg,", 1)
        out.setdefault(image + ".jpg", []).append(text.strip())
    return out


def read_coco_annotations(file: str | os.PathLike) -> dict[str, list[str]]:
    """COCO caption JSON (images: id, file_name; annotations: image_id, caption) -> {file_name: [captions]}
    in the images' order."""
    data = json.loads(Path(file).read_text(encoding="utf-8"))
    try:
        names = {im["id"]: im["file_name"] for im in data["images"]}
        out = {name: [] for name in names.values()}
        for a in data["annotations"]:
            out[names[a["image_id"]]].append(a["caption"].strip())
    except (KeyError, TypeError) as e:
        raise BadInput(f"{file} is not COCO caption JSON (images with id/file_name, annotations with "
                       f"image_id/caption): missing {e}") from e
    return out


def _caption_set(name: str, folder: Path, table: dict[str, list[str]], n_images: int = 0) -> CaptionSet:
    items = [(k, v) for k, v in table.items() if v][:n_images or None]
    texts = [t for _, caps in items for t in caps]
    owners = np.repeat(np.arange(len(items)), [len(caps) for _, caps in items])
    return CaptionSet(name, FileList([str(folder / k) for k, _ in items]), texts, owners)


def flickr30k(root: str | os.PathLike, split: str = "test", n_images: int = 0) -> CaptionSet:
    """Flickr30k (Karpathy split): <root>/flickr30k_<split>_karpathy.txt, images in <root>."""
    root = Path(root)
    table = read_flickr_annotations(_need(root / f"flickr30k_{split}_karpathy.txt", "Flickr30k annotations"))
    return _caption_set(f"flickr30k/{split}", root, table, n_images)


def mscoco(root: str | os.PathLike, split: str = "test", n_images: int = 0) -> CaptionSet:
    """MSCOCO (Karpathy split): <root>/coco_<split>_karpathy.json, images under <root>/val2014."""
    root = Path(root)
    table = read_coco_annotations(_need(root / f"coco_{split}_karpathy.json", "MSCOCO annotations"))
    return _caption_set(f"mscoco/{split}", root / ("train2014" if split == "train" else "val2014"), table, n_images)
