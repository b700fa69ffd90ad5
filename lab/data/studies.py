"""ShapeWorld sets for the limitation studies, versioned apart from the shift suites (which they
never change): a balanced counting set, drawn shapes on plain backgrounds of every kind, and
typographic-attack sets.

    counting_set(n=400, split="test")      # 1-4 objects, n/4 of each; task "count"
    backgrounds_set(n=400)                 # light, dark, saturated, muted: n/4 of each
    sets = typographic_sets(n=300)         # {condition: dataset}, the same scenes in every condition
    sets["wrong"].words, sets["wrong"].band

Typographic conditions (Goh et al. 2021; Materzyńska et al. 2022): clean (the scene), blank (a
light band, no word), correct (the true shape's name on the band), wrong (another class's name),
nonsense (a made-up word of similar length), word_only (the band and a class name on an empty
background: the label is the written class). The band spans the image's top or bottom fifth and
the scene's objects sit in the other two rows of the grid, so the band never covers an object.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from .shapeworld import WorldDataset
from .world import SHAPES, SIZES, SPLIT_SEEDS, draw_scene, item_rng, labels_of, widen_background

__all__ = ["VERSION", "CONDITIONS", "NONSENSE", "BAND", "BAND_FILL", "SEEDS", "PLAIN_BACKGROUNDS", "SceneSet",
           "place", "counting_set", "backgrounds_set", "band_box", "TypographicSet", "write_word", "typographic_sets"]

VERSION = "shapeworld-studies-1"
CONDITIONS = ["clean", "blank", "correct", "wrong", "nonsense", "word_only"]
NONSENSE = ["blorft", "quibex", "snarvel", "dravik", "plimsey", "gorbun", "twelkin", "frumple", "zindar", "mobrick"]
BAND = 0.2  # band height, a fraction of the side (the grid's rows are thirds)
BAND_FILL = (248, 248, 248)
SEEDS = {"counting": 7100, "typographic": 7200, "backgrounds": 7300}
PLAIN_BACKGROUNDS = ["plain", "dark", "saturated", "muted"]  # "plain": the world's own light ones


class SceneSet(WorldDataset):
    """A WorldDataset over a given list of scenes (same labels, tasks, keys and rendering)."""

    def __init__(self, name: str, scenes: list, task: str = "shape", image_size: int = 64, split: str = "test"):
        self.split, self.n, self.image_size, self.task = split, len(scenes), image_size, task
        self.suite = self.severity = self.corruption = None
        self.name = f"{VERSION}/{name}"
        self._scenes = list(scenes)
        self._labels = pd.DataFrame([labels_of(s) for s in self._scenes])
        self.classes = self.task_classes(task)
        self._labels["label"] = self.task_labels(task)

    def scene(self, i: int):
        return self._scenes[i]


def place(scene, rng: np.random.Generator, count: int, cells=range(9)):
    """The scene with `count` objects in distinct cells drawn from `cells` (small or medium from
    three objects on, as the world draws them)."""
    size = list(SIZES)[rng.integers(3)] if count < 3 else list(SIZES)[rng.integers(2)]
    chosen = [int(c) for c in rng.choice(list(cells), size=count, replace=False)]
    angles = [math.radians(rng.uniform(-15, 15)) for _ in range(count)]
    jitter = [tuple(rng.uniform(-0.04, 0.04, 2)) for _ in range(count)]
    return replace(scene, count=count, size=size, cells=chosen, angles=angles, jitter=jitter)


def counting_set(n: int = 400, split: str = "test", image_size: int = 64) -> SceneSet:
    """n scenes, exactly n/4 with each count 1-4 (n is rounded down to a multiple of 4); task 'count'.
    Splits train / val / test draw from disjoint seed streams."""
    scenes = []
    for i in range(n - n % 4):
        rng = item_rng(SEEDS["counting"] + SPLIT_SEEDS[split], i)
        scenes.append(place(draw_scene(rng), rng, 1 + i % 4))
    return SceneSet(f"counting-{split}-n{len(scenes)}", scenes, task="count", image_size=image_size, split=split)


def backgrounds_set(n: int = 400, split: str = "test", image_size: int = 64) -> SceneSet:
    """Drawn shapes on plain backgrounds of every kind, as learners draw them: n scenes, n/4 on each
    of the world's light backgrounds and dark, saturated and muted ones (labels['style'] says
    which); tasks shape and colour. No texture: that kind is for training only."""
    scenes = []
    for i in range(n - n % 4):
        rng = item_rng(SEEDS["backgrounds"] + SPLIT_SEEDS[split], i)
        scene = draw_scene(rng, styles=["plain"])
        kind = PLAIN_BACKGROUNDS[i % 4]
        scenes.append(scene if kind == "plain" else widen_background(scene, rng, [kind]))
    return SceneSet(f"backgrounds-{split}-n{len(scenes)}", scenes, image_size=image_size, split=split)


def band_box(top: bool, image_size: int = 64) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) pixels of the band: the top or bottom fifth, full width."""
    h = int(round(BAND * image_size))
    return (0, 0, image_size, h) if top else (0, image_size - h, image_size, image_size)


class TypographicSet(SceneSet):
    """Scenes with a band (and a word on it) drawn over the rendered image. words[i] is the text
    ("" for a blank band, None for no band); band[i] the band's box."""

    def __init__(self, name, scenes, words, tops, image_size=64):
        super().__init__(name, scenes, "shape", image_size)
        self.words, self.band = list(words), [band_box(t, image_size) for t in tops]
        self._labels["word"] = self.words

    def content_key(self, i: int) -> str:
        return f"{super().content_key(i)}/band{self.band[i]}/{self.words[i]!r}"

    def source(self, i: int) -> Image.Image:
        img = super().source(i)
        if self.words[i] is None:
            return img
        return write_word(img, self.words[i], self.band[i])


def write_word(img: Image.Image, word: str, box, fill=(0, 0, 0)) -> Image.Image:
    """The image with a light band over `box` and `word` (in `fill`, black by default) centred on it."""
    img = img.copy()
    draw = ImageDraw.Draw(img)
    draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=BAND_FILL)
    if word:
        font = ImageFont.load_default(size=max(8, int(0.17 * img.size[0])))
        x0, y0, x1, y1 = draw.textbbox((0, 0), word, font=font)
        x = (box[0] + box[2] - (x1 - x0)) / 2 - x0
        y = (box[1] + box[3] - (y1 - y0)) / 2 - y0
        draw.text((x, y), word, fill=tuple(fill), font=font)
    return img


def typographic_sets(n: int = 300, image_size: int = 64, shapes=SHAPES) -> dict[str, TypographicSet]:
    """{condition: dataset} over the same n scenes (word_only: the same backgrounds without objects).
    Labels: the true shape; word_only's label is the written class. `wrong` writes a seeded other
    class, `nonsense` a made-up word; labels['written'] is the class `wrong` writes, in every condition."""
    shapes = list(shapes)
    scenes, tops, wrong, nonsense = [], [], [], []
    for i in range(n):
        rng = item_rng(SEEDS["typographic"], i)
        scene = draw_scene(rng, shapes=shapes)
        top = bool(rng.integers(2))
        rows = (3, 4, 5, 6, 7, 8) if top else (0, 1, 2, 3, 4, 5)  # the two rows away from the band
        scenes.append(place(scene, rng, min(scene.count, 2), rows))
        tops.append(top)
        others = [s for s in shapes if s != scene.shape]
        wrong.append(others[rng.integers(len(others))])
        nonsense.append(NONSENSE[rng.integers(len(NONSENSE))])
    empty = [replace(s, count=0, cells=[], angles=[], jitter=[], shape=w) for s, w in zip(scenes, wrong)]
    words = {"clean": [None] * n, "blank": [""] * n, "correct": [s.shape for s in scenes], "wrong": wrong,
             "nonsense": nonsense, "word_only": wrong}
    out = {}
    for cond in CONDITIONS:
        ds = TypographicSet(f"typographic-{cond}-n{n}", empty if cond == "word_only" else scenes, words[cond],
                            tops, image_size)
        ds.classes = shapes
        ds._labels["label"] = [shapes.index(s.shape) for s in (empty if cond == "word_only" else scenes)]
        ds._labels["written"] = [shapes.index(w) for w in wrong]
        out[cond] = ds
    return out
