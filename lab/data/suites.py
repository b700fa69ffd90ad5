"""ShapeWorld's distribution-shift suites, mirroring the ImageNet shifts of the CLIP paper.

Each recipe changes the clean generator in one documented way:
- v2 (ImageNetV2): a fresh draw (own seeds) with mild drift: more colour jitter, darker
  backgrounds, larger position jitter. Same classes.
- sketch (ImageNet-Sketch): black outlines on white, no colour or texture. Same classes.
- rendition (ImageNet-R): cartoon (black outline, flat fill), painting (mottled strokes) and
  pattern (striped fill) renderings, on a 6-class subset.
- adversarial (ImageNet-A): natural draws (the v2 drift) on a 6-class subset, kept only where
  a supervised CNN trained on the clean training split is wrong. The kept indices ship in
  adversarial.json; `python -m lab suites build-adversarial` rebuilds them.
- objectnet (ObjectNet): controlled rotations (any angle), cluttered dark backgrounds and
  grey occluders over part of the object.
- corruptions (ImageNet-C): the clean test images under each corruption type at severity 1-5.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path


from .world import SIZES, SPLIT_SEEDS, Scene, draw_scene, item_rng

__all__ = ["SUBSET", "ADVERSARIAL_FILE", "SUITES", "adversarial_indices", "scene_for"]

SUBSET = ["circle", "square", "triangle", "star", "heart", "arrow"]
ADVERSARIAL_FILE = Path(__file__).parent / "adversarial.json"
SUITES = {
    "v2": {"offset": 101},
    "sketch": {"offset": 0},
    "rendition": {"offset": 303, "shapes": SUBSET},
    "adversarial": {"offset": 404, "shapes": SUBSET},
    "objectnet": {"offset": 505},
    "corruptions": {"offset": 0},
}


@functools.lru_cache(maxsize=1)
def adversarial_indices() -> list[int]:
    """Generator indices of the kept candidates (selected on the test split's seed stream)."""
    if not ADVERSARIAL_FILE.exists():
        raise FileNotFoundError(f"{ADVERSARIAL_FILE} is missing; run `python -m lab suites build-adversarial`")
    return json.loads(ADVERSARIAL_FILE.read_text())["indices"]


def scene_for(split: str, i: int, suite: str | None = None, corruption: str | None = None,
              severity: int | None = None) -> Scene:
    seed = SPLIT_SEEDS[split] + (SUITES[suite]["offset"] if suite else 0)
    if suite == "adversarial":
        kept = adversarial_indices()
        if split != "test" or i >= len(kept):
            raise IndexError(f"the adversarial suite is {len(kept)} images of the test split; asked for {split} item {i}")
        return draw_scene(item_rng(seed, kept[i]), shapes=SUBSET, drift=1.0)
    rng = item_rng(seed, i)
    if suite is None or suite == "corruptions":
        scene = draw_scene(rng)
        if suite == "corruptions":
            if corruption is None or severity is None:
                raise ValueError("the corruptions suite needs corruption=<type> and severity=1..5")
            scene.corruption = (corruption, severity)
        return scene
    if suite == "v2":
        return draw_scene(rng, drift=1.0)
    if suite == "sketch":
        scene = draw_scene(rng)
        scene.render, scene.style = "sketch", "white"
        return scene
    if suite == "rendition":
        scene = draw_scene(rng, shapes=SUBSET)
        scene.render = ["cartoon", "painting", "pattern"][int(rng.integers(3))]
        return scene
    if suite == "objectnet":
        scene = draw_scene(rng, rotation=180.0)
        if rng.random() < 0.5:
            scene.style = "clutter"
        if rng.random() < 0.5:  # occlude about a third of the first object
            row, col = divmod(scene.cells[0], 3)
            cx, cy = (col + 0.5) / 3 + scene.jitter[0][0], (row + 0.5) / 3 + scene.jitter[0][1]
            r = SIZES[scene.size]
            side = rng.integers(4)
            x0, y0, x1, y1 = cx - r, cy - r, cx + r, cy + r
            if side == 0:
                x1 = cx - r / 3
            elif side == 1:
                x0 = cx + r / 3
            elif side == 2:
                y1 = cy - r / 3
            else:
                y0 = cy + r / 3
            scene.occluders.append((max(x0, 0), max(y0, 0), min(x1, 1), min(y1, 1), 128.0))
        return scene
    raise KeyError(suite)


if __name__ == "__main__":
    raise SystemExit("moved: python -m lab suites materialize | sheet | build-adversarial")
