"""ShapeWorld's distribution-shift suites, mirroring the ImageNet shifts of the CLIP paper.

Each recipe changes the clean generator in one documented way:
- v2 (ImageNetV2): a fresh draw (own seeds) with mild drift: more colour jitter, darker
  backgrounds, larger position jitter. Same classes.
- sketch (ImageNet-Sketch): black outlines on white, no colour or texture. Same classes.
- rendition (ImageNet-R): cartoon (black outline, flat fill), painting (mottled strokes) and
  pattern (striped fill) renderings, on a 6-class subset.
- adversarial (ImageNet-A): natural draws (the v2 drift) on a 6-class subset, kept only where
  a supervised CNN trained on the clean training split is wrong. The kept indices ship in
  adversarial.json; `python -m lab.data.suites build-adversarial` rebuilds them.
- objectnet (ObjectNet): controlled rotations (any angle), cluttered dark backgrounds and
  grey occluders over part of the object.
- corruptions (ImageNet-C): the clean test images under each corruption type at severity 1-5.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path


from .world import SIZES, SPLIT_SEEDS, Scene, draw_scene, item_rng

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
        raise FileNotFoundError(f"{ADVERSARIAL_FILE} is missing; run `python -m lab.data.suites build-adversarial`")
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


def suite_datasets(n: int, split: str = "test", image_size: int = 64, corruptions=None, severities=range(1, 6),
                   corruption_n: int | None = None):
    """{relative folder: WorldDataset} for the clean split and every shift suite, in the folder
    layout of their real counterparts (corruptions/<type>/<severity>/ as in ImageNet-C)."""
    from .corruptions import CORRUPTIONS
    from .world import WorldDataset
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
    import pandas as pd
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)
    return folder


def contact_sheet(n: int = 8, scale: int = 2):
    """One row of `n` test images per suite (a corruption row at severity 3), labelled: a PIL image."""
    from PIL import Image, ImageDraw
    from .world import WorldDataset
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


def main(argv=None):
    import argparse
    from tqdm.auto import tqdm
    p = argparse.ArgumentParser(prog="python -m lab.data.suites", description="ShapeWorld shift suites")
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("materialize", help="write the clean split and every suite as class folders")
    m.add_argument("--out", required=True)
    m.add_argument("--n", type=int, default=200, help="images per suite")
    m.add_argument("--split", default="test")
    c = sub.add_parser("sheet", help="save a contact sheet: a row of images per suite")
    c.add_argument("--out", required=True)
    b = sub.add_parser("build-adversarial", help="re-select the adversarial suite with a supervised CNN")
    b.add_argument("--candidates", type=int, default=12000)
    args = p.parse_args(argv)
    if args.cmd == "materialize":
        for rel, ds in tqdm(suite_datasets(args.n, args.split).items(), desc="suites"):
            materialize(ds, Path(args.out) / rel)
        print(f"wrote {args.out}")
    elif args.cmd == "sheet":
        contact_sheet().save(args.out)
    else:
        from .adversarial import build_adversarial
        build_adversarial(args.candidates)


if __name__ == "__main__":
    main()
