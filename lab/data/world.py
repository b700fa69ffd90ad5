"""ShapeWorld: lab's built-in, procedurally generated image world (offline stand-in for ImageNet).

Each scene (64 px by default) holds one to four copies of one coloured shape on a styled
background. Every sample carries its image, structured labels (shape, colour, size, position,
count, style), a caption from a small grammar, and per-object boxes and masks. Generation is
deterministic: sample i of a split is drawn from its own RNG seeded with (split seed, i).

    from lab.data.shapeworld import WorldDataset
    from lab.data.world import render
    ds = WorldDataset("test", n=2000)              # a lab dataset (see lab.data)
    s = ds.sample(0); s.image, s.labels, s.caption, s.boxes, s.masks
    python -m lab suites materialize --out data/suites --n 50   # class folders on disk

Splits: train (unbounded), val, test. Shift suites (recipes in SUITES and docs/world.md):
v2, sketch, rendition, adversarial, objectnet, and corruptions (ImageNet-C style, 1-5).
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["VERSION", "SS", "SHAPES", "SHAPE_SYNONYMS", "COLOURS", "COLOUR_SYNONYMS", "SIZES", "SIZE_SYNONYMS",
           "POSITIONS", "COUNTS", "STYLES", "BACKGROUNDS", "SPLIT_SEEDS", "plural", "shape_mask", "Scene",
           "draw_scene", "widen_background", "render", "two_objects", "FRAMES", "caption", "stated_caption",
           "TEMPLATES", "task_prompts", "labels_of", "item_rng"]

VERSION = "shapeworld-1"  # part of every cache key: bump it whenever rendering changes
SS = 2  # supersampling factor for anti-aliased edges

SHAPES = ["circle", "square", "triangle", "star", "cross", "heart", "diamond", "crescent", "ring", "arrow"]
SHAPE_SYNONYMS = {"circle": "disk", "cross": "plus sign", "crescent": "moon", "ring": "donut", "diamond": "rhombus"}
COLOURS = {
    "red": (220, 40, 40), "green": (40, 165, 60), "blue": (40, 80, 225), "yellow": (235, 205, 30),
    "orange": (245, 135, 25), "purple": (140, 55, 190), "pink": (245, 125, 190), "cyan": (30, 195, 210),
}
COLOUR_SYNONYMS = {"purple": "violet", "cyan": "turquoise"}
SIZES = {"small": 0.12, "medium": 0.165, "large": 0.21}  # radius as a fraction of the image side
SIZE_SYNONYMS = {"small": "little", "large": "big"}
POSITIONS = ["top left", "top center", "top right", "middle left", "center", "middle right",
             "bottom left", "bottom center", "bottom right"]
COUNTS = ["one", "two", "three", "four"]
STYLES = ["plain", "gradient", "noise"]
BACKGROUNDS = ["dark", "saturated", "muted", "texture"]  # widened backgrounds: training and studies only
SPLIT_SEEDS = {"train": 1000, "val": 2000, "test": 3000}


def plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("s", "x")) else "s")


# -- shapes as polygons on the unit disk ---------------------------------------------------------

def _regular(n, phase=-math.pi / 2, r=1.0):
    return [(r * math.cos(phase + 2 * math.pi * k / n), r * math.sin(phase + 2 * math.pi * k / n)) for k in range(n)]


def _star():
    pts = []
    for k in range(10):
        r = 1.0 if k % 2 == 0 else 0.42
        a = -math.pi / 2 + math.pi * k / 5
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


def _heart():
    ts = np.linspace(0, 2 * math.pi, 40, endpoint=False)
    x = 16 * np.sin(ts) ** 3
    y = -(13 * np.cos(ts) - 5 * np.cos(2 * ts) - 2 * np.cos(3 * ts) - np.cos(4 * ts))
    return list(zip(x / 17, (y + 2) / 17))


_POLYGONS = {
    "square": [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)],
    "triangle": _regular(3, r=1.05),
    "star": _star(),
    "cross": [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1), (-0.3, 1),
              (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)],
    "heart": _heart(),
    "diamond": [(0, -1), (0.62, 0), (0, 1), (-0.62, 0)],
    "arrow": [(-1, -0.25), (0.2, -0.25), (0.2, -0.65), (1, 0), (0.2, 0.65), (0.2, 0.25), (-1, 0.25)],
}
_CIRCLE = _regular(48, r=0.9)


def _transform(pts, cx, cy, r, angle):
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in pts]


def shape_mask(shape: str, size: int, cx: float, cy: float, r: float, angle: float) -> Image.Image:
    """Mode-L mask (0/255) of one shape at supersampled resolution `size`."""
    m = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(m)
    if shape in _POLYGONS:
        d.polygon(_transform(_POLYGONS[shape], cx, cy, r, angle), fill=255)
    elif shape == "circle":
        d.polygon(_transform(_CIRCLE, cx, cy, r, 0), fill=255)
    elif shape == "ring":
        d.polygon(_transform(_CIRCLE, cx, cy, r, 0), fill=255)
        d.polygon(_transform(_CIRCLE, cx, cy, r * 0.55, 0), fill=0)
    elif shape == "crescent":
        d.polygon(_transform(_CIRCLE, cx, cy, r, 0), fill=255)
        ox, oy = 0.45 * r * math.cos(angle), 0.45 * r * math.sin(angle)
        d.polygon(_transform(_CIRCLE, cx + ox, cy + oy, r * 0.85, 0), fill=0)
    else:
        raise KeyError(f"unknown shape {shape!r}; shapes are {SHAPES}")
    return m


# -- scene parameters ----------------------------------------------------------------------------

@dataclass
class Scene:
    """Everything needed to render one image; drawn from an RNG by `draw_scene`."""
    shape: str
    colour: str
    size: str
    count: int
    cells: list[int]
    style: str
    rgb: tuple
    angles: list[float]
    jitter: list[tuple]
    background: dict = field(default_factory=dict)
    render: str = "fill"          # fill | sketch | cartoon | painting | pattern
    occluders: list = field(default_factory=list)
    corruption: tuple | None = None


def draw_scene(rng: np.random.Generator, shape=None, colour=None, drift: float = 0.0,
               shapes=SHAPES, rotation: float = 15.0, styles=STYLES) -> Scene:
    shape = shape or shapes[rng.integers(len(shapes))]
    colour = colour or list(COLOURS)[rng.integers(len(COLOURS))]
    count = int(rng.choice([1, 2, 3, 4], p=[0.55, 0.2, 0.15, 0.1]))
    size = list(SIZES)[rng.integers(3)] if count < 3 else list(SIZES)[rng.integers(2)]
    cells = [int(c) for c in rng.choice(9, size=count, replace=False)]
    base = np.array(COLOURS[colour], dtype=float)
    rgb = tuple(int(v) for v in np.clip(base + rng.normal(0, 10 + 25 * drift, 3), 0, 255))
    angles = [math.radians(rng.uniform(-rotation, rotation)) for _ in range(count)]
    jitter = [tuple(rng.uniform(-0.04 - 0.03 * drift, 0.04 + 0.03 * drift, 2)) for _ in range(count)]
    style = styles[rng.integers(len(styles))]
    tint = rng.uniform(-12, 12, 3)
    light = 228 - 30 * drift * rng.uniform(0, 1)
    bg = {"a": tuple(np.clip(light + tint, 0, 255)), "b": tuple(np.clip(light - 25 + rng.uniform(-15, 15, 3), 0, 255)),
          "seed": int(rng.integers(2**31))}
    return Scene(shape, colour, size, count, cells, style, rgb, angles, jitter, bg)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return 255 * np.array(colorsys.hsv_to_rgb(h, s, v))


def _backdrop(rng: np.random.Generator, kind: str, avoid: np.ndarray) -> tuple:
    """One background colour of a widened kind, at least 110 RGB units from the object's colour
    `avoid` (so the object stays visible and its colour word keeps its meaning)."""
    for _ in range(50):
        if kind == "dark":
            rgb = _hsv(rng.uniform(), rng.uniform(0, 0.8), rng.uniform(0.0, 0.3))
        elif kind == "saturated":
            rgb = _hsv(rng.uniform(), rng.uniform(0.6, 1.0), rng.uniform(0.5, 1.0))
        else:  # muted (greys, browns, pastels) and the two colours of a texture
            rgb = _hsv(rng.uniform(), rng.uniform(0, 0.45), rng.uniform(0.25, 0.85))
        if np.linalg.norm(rgb - avoid) >= 110:
            break
    return tuple(float(v) for v in rgb)


def widen_background(scene: Scene, rng: np.random.Generator, kinds=BACKGROUNDS) -> Scene:
    """The scene on a background of a kind drawn from `kinds`: dark (near black, any tint),
    saturated (a vivid colour), muted (greys, browns, pastels) or texture (a photo-like mottle of
    two colours with grain). The splits and shift suites never call it, so they stay as they are."""
    kind = kinds[rng.integers(len(kinds))]
    avoid = np.array(scene.rgb, float)
    a, b = _backdrop(rng, kind, avoid), _backdrop(rng, kind, avoid)
    return replace(scene, style=kind, background={"a": a, "b": b, "seed": scene.background["seed"]})


def _background(scene: Scene, size: int) -> np.ndarray:
    a, b = np.array(scene.background["a"]), np.array(scene.background["b"])
    if scene.style in ("plain", "dark", "saturated", "muted"):
        img = np.broadcast_to(a, (size, size, 3)).astype(float)
    elif scene.style == "gradient":
        t = np.linspace(0, 1, size)[None, :, None]
        img = np.broadcast_to(a * (1 - t) + b * t, (size, size, 3)).astype(float)
    elif scene.style == "noise":
        rng = np.random.default_rng(scene.background["seed"])
        img = a + rng.normal(0, 14, (size // SS, size // SS, 1)).repeat(SS, 0).repeat(SS, 1)
    elif scene.style == "clutter":  # objectnet: busy, dark, multicolour blobs
        rng = np.random.default_rng(scene.background["seed"])
        low = rng.uniform(20, 200, (4, 4, 3))
        img = np.asarray(Image.fromarray(low.astype(np.uint8)).resize((size, size), Image.BICUBIC), float)
    elif scene.style == "texture":  # blotches at two scales blending two colours, plus grain
        rng = np.random.default_rng(scene.background["seed"])
        t = sum(np.asarray(Image.fromarray(rng.uniform(0, 255, (k, k)).astype(np.uint8)).resize(
            (size, size), Image.BICUBIC), float) / 255 * w for k, w in ((3, 0.6), (12, 0.4)))
        t = np.clip((t - 0.5) * 2.5 + 0.5, 0, 1)[..., None]  # (S, S, 1) sharpened blend weight
        img = a * (1 - t) + b * t + rng.normal(0, 8, (size // SS, size // SS, 1)).repeat(SS, 0).repeat(SS, 1)
    elif scene.style == "white":
        img = np.full((size, size, 3), 255.0)
    else:
        raise KeyError(scene.style)
    return img


def _fill(scene: Scene, size: int, rng: np.random.Generator) -> np.ndarray:
    colour = np.array(scene.rgb, float)
    if scene.render == "pattern":  # stripes of the colour on white
        period = max(4, size // 10)
        yy, xx = np.mgrid[0:size, 0:size]
        stripe = ((xx + yy) // (period // 2)) % 2 == 0
        return np.where(stripe[..., None], colour, 255.0)
    if scene.render == "painting":  # mottled brush strokes around the colour
        noise = rng.normal(0, 30, (size // 8, size // 8, 3))
        noise = np.asarray(Image.fromarray(np.clip(noise + 128, 0, 255).astype(np.uint8)).resize(
            (size, size), Image.BICUBIC), float) - 128
        return np.clip(colour + noise, 0, 255)
    return np.broadcast_to(colour, (size, size, 3))


def render(scene: Scene, image_size: int = 64, with_masks: bool = True):
    """-> (RGB image, per-object boolean masks (H, W), per-object boxes (x0, y0, x1, y1));
    with_masks=False skips the masks and boxes (training only needs pixels)."""
    S = image_size * SS
    rng = np.random.default_rng(scene.background["seed"] + 1)
    canvas = _background(scene, S)
    fill = _fill(scene, S, rng)
    masks_ss = []
    cell = S / 3
    for k in range(scene.count):
        row, col = divmod(scene.cells[k], 3)
        cx = (col + 0.5) * cell + scene.jitter[k][0] * S
        cy = (row + 0.5) * cell + scene.jitter[k][1] * S
        m = np.asarray(shape_mask(scene.shape, S, cx, cy, SIZES[scene.size] * S, scene.angles[k]), float) / 255
        masks_ss.append(m)
        if scene.render in ("sketch", "cartoon"):
            edge = np.asarray(Image.fromarray((m * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(5)), float) / 255
            outline = np.clip(edge - m, 0, 1)
            if scene.render == "cartoon":
                canvas = canvas * (1 - m[..., None]) + fill * m[..., None]
            canvas = canvas * (1 - outline[..., None])  # black strokes
            masks_ss[-1] = np.maximum(m, outline)
        else:
            canvas = canvas * (1 - m[..., None]) + fill * m[..., None]
    for (x0, y0, x1, y1, shade) in scene.occluders:  # fractions of the side
        canvas[int(y0 * S):int(y1 * S), int(x0 * S):int(x1 * S)] = shade
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).resize((image_size, image_size), Image.BOX)
    if scene.corruption:
        from .corruptions import corrupt
        img = corrupt(img, *scene.corruption, seed=scene.background["seed"])
    if not with_masks:
        return img, [], []
    occluded = np.zeros((S, S), bool)
    for (x0, y0, x1, y1, _) in scene.occluders:
        occluded[int(y0 * S):int(y1 * S), int(x0 * S):int(x1 * S)] = True
    masks, boxes = [], []
    for k, m in enumerate(masks_ss):  # visible part: not covered by later objects or occluders
        vis = m > 0.5
        for later in masks_ss[k + 1:]:
            vis &= later <= 0.5
        vis &= ~occluded
        small = np.asarray(Image.fromarray(vis.astype(np.uint8) * 255).resize((image_size, image_size), Image.BOX)) > 127
        masks.append(small)
        ys, xs = np.nonzero(small)
        boxes.append((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) if len(xs) else (0, 0, 0, 0))
    return img, masks, boxes


def two_objects(first=("circle", "red"), second=("square", "blue"), image_size: int = 64, seed: int = 0):
    """One plain-background image holding two different objects (left and right), for comparing
    prompts on the same picture -> (image, {shape: mask (H, W) bool})."""
    base = draw_scene(item_rng(seed, 0), shape=first[0], colour=first[1])
    common = dict(count=1, size="large", style="plain", render="fill", occluders=[], corruption=None,
                  angles=[0.0], jitter=[(0.0, 0.0)])
    scenes = [replace(base, shape=s, colour=c, rgb=COLOURS[c], cells=[cell], **common)
              for (s, c), cell in ((first, 3), (second, 5))]
    (a, mask_a, _), (b, mask_b, _) = (render(sc, image_size) for sc in scenes)
    pixels = np.where(mask_b[0][..., None], np.asarray(b), np.asarray(a))
    return Image.fromarray(pixels), {first[0]: mask_a[0] & ~mask_b[0], second[0]: mask_b[0]}


# -- captions ------------------------------------------------------------------------------------

FRAMES = ["a photo of {x}.", "a picture of {x}.", "an image of {x}.", "a rendering of {x}.", "a drawing of {x}.",
          "{x}.", "there is {x}.", "this is {x}.", "a close-up photo of {x}.", "a cropped photo of {x}."]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(scene: Scene, rng: np.random.Generator) -> str:
    """One caption from the grammar: framing, attribute order, synonyms, count, position."""
    return stated_caption(scene, rng)[0]


def stated_caption(scene: Scene, rng: np.random.Generator) -> tuple[str, dict]:
    """`caption`'s text (same draws from rng) and the attributes it states, by their canonical
    values ({shape, colour, count} always; size and position when the caption names them)."""
    syn = lambda w, table: table[w] if w in table and rng.random() < 0.25 else w  # noqa: E731
    shape, colour, size = syn(scene.shape, SHAPE_SYNONYMS), syn(scene.colour, COLOUR_SYNONYMS), syn(scene.size, SIZE_SYNONYMS)
    base = {"shape": scene.shape, "colour": scene.colour, "count": scene.count}
    sized, placed = {"size": scene.size}, {"position": POSITIONS[scene.cells[0]]}
    if scene.count == 1:
        pos = POSITIONS[scene.cells[0]]
        forms = [(f"{colour} {shape}", {}), (f"{size} {colour} {shape}", sized),
                 (f"{colour} {shape} in the {pos}", placed), (f"{size} {colour} {shape} in the {pos}", sized | placed),
                 (f"{shape} that is {colour}", {}), (f"{colour} {size} {shape}", sized)]
        obj, extra = forms[rng.integers(len(forms))]
        text = f"{_article(obj)} {obj}"
        frame = FRAMES[rng.integers(len(FRAMES))]
    else:
        num, shapes = COUNTS[scene.count - 1], plural(shape)
        forms = [(f"{num} {colour} {shapes}", {}), (f"{num} {size} {colour} {shapes}", sized),
                 (f"{num} {shapes} that are {colour}", {})]
        text, extra = forms[rng.integers(len(forms))]
        frame = ["a photo of {x}.", "a picture of {x}.", "there are {x}.", "{x}.", "a drawing of {x}."][rng.integers(5)]
    return frame.format(x=text), base | extra


# -- zero-shot prompts --------------------------------------------------------------------------

TEMPLATES = ["a photo of {}.", "a picture of {}.", "a drawing of {}.", "there is {}."]


def _a(phrase: str) -> str:
    return f"{_article(phrase)} {phrase}"


def task_prompts(task: str, templates=TEMPLATES, shapes=SHAPES) -> dict[str, list[str]]:
    """Per-class prompt lists for a zero-shot task, ensembled over the other attributes
    (e.g. "shape": 'circle' -> 'a photo of a red circle.', 'a drawing of a blue circle.', ...)."""
    if task == "shape":
        return {s: [t.format(_a(f"{c} {s}")) for c in COLOURS for t in templates] for s in shapes}
    if task == "colour":
        return {c: [t.format(_a(f"{c} {s}")) for s in shapes for t in templates] for c in COLOURS}
    if task == "size":
        return {z: [t.format(_a(f"{z} {c} {s}")) for c in COLOURS for s in shapes for t in templates[:1]] for z in SIZES}
    if task == "count":
        return {n: [t.format(_a(f"{c} {s}") if k == 0 else f"{n} {c} {plural(s)}") for c in COLOURS for s in shapes
                    for t in templates[:1]] for k, n in enumerate(COUNTS)}
    if task == "position":
        return {p: [t.format(_a(f"{c} {s} in the {p}")) for c in COLOURS for s in shapes for t in templates[:1]]
                for p in POSITIONS}
    raise KeyError(f"unknown task {task!r}; tasks are shape, colour, size, count, position")


# -- samples and datasets ------------------------------------------------------------------------

def labels_of(scene: Scene) -> dict:
    return {"shape": scene.shape, "colour": scene.colour, "size": scene.size, "count": scene.count,
            "position": POSITIONS[scene.cells[0]] if scene.count == 1 else "several", "style": scene.style,
            "render": scene.render}


def item_rng(seed: int, i: int, *extra: int) -> np.random.Generator:
    return np.random.default_rng([seed, i, *extra])


