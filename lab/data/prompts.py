"""Class names and prompt templates as data, with a registry (taken from maintained packages, never
retyped): open_clip's 1,000 curated ImageNet names, its 80 templates and the 7 CLIP selected;
WordNet's first lemma per ImageNet class (from timm's synset tables) as the "original" names;
clip-benchmark's names and templates for the other datasets of the CLIP model card; CuPL's
per-class ImageNet prompts; and ShapeWorld's own.

    from lab.data import prompts
    prompts.list_classnames(); prompts.list_templates()
    names = prompts.classnames("imagenet")           # 1000 names; "missile" and "sunglasses" repeat
    temps = prompts.templates("openai-imagenet-7")   # ["itap of a {}.", ...]
    per_class = prompts.class_prompts(names, temps)  # [[prompt, ...] per class], in class order

Classes are always identified by index: names may repeat. A user's own set is a list, or a JSON
file holding a list (names / templates) or a {name: [prompts]} object (per-class prompts, CuPL style).
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..errors import BadInput

__all__ = ["imagenet_wnids", "list_classnames", "list_templates", "list_class_prompts", "classnames", "templates",
           "class_prompts", "per_class_prompts"]


def _world_templates() -> list[str]:
    from .world import FRAMES
    return [f.replace("{x}", "a {}") for f in FRAMES]


def _world_shapes(synonyms: bool) -> list[str]:
    from .world import SHAPE_SYNONYMS, SHAPES
    return [SHAPE_SYNONYMS.get(s, s) if synonyms else s for s in SHAPES]


def _world_colours() -> list[str]:
    from .world import COLOURS
    return list(COLOURS)


@lru_cache(maxsize=None)
def _openclip():
    """open_clip's zero_shot_metadata (class names, templates): a module of plain lists, read from
    open_clip's folder without importing open_clip itself (which imports torch: seconds)."""
    import importlib.util
    package = importlib.util.find_spec("open_clip")
    if package is None:
        raise ModuleNotFoundError("open_clip is not installed: pip install open_clip_torch")
    spec = importlib.util.spec_from_file_location(
        "lab._open_clip_zero_shot_metadata", Path(package.origin).parent / "zero_shot_metadata.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wordnet_imagenet() -> list[str]:
    """ImageNet's original WordNet names: the first lemma of each synset, in class order."""
    from timm.data import ImageNetInfo
    info = ImageNetInfo()
    return [info.index_to_description(i).split(",")[0].strip() for i in range(info.num_classes())]


def imagenet_wnids() -> list[str]:
    """The 1,000 ImageNet-1k WNIDs in class-index order (sorted, as every ImageNet tool orders them)."""
    from timm.data import ImageNetInfo
    info = ImageNetInfo()
    return [info.index_to_label_name(i) for i in range(info.num_classes())]


def _usable(items) -> bool:
    return isinstance(items, list) and bool(items) and all(isinstance(s, str) and s.strip() for s in items)


@lru_cache(maxsize=None)
def _clip_benchmark(kind: str) -> dict:
    """clip-benchmark's English JSON tables: kind 'classnames', 'templates' (its '{c}' slot
    rewritten to lab's '{}') or 'cupl'. Sets lab cannot use (e.g. with an empty name) are left out."""
    file = {"classnames": "en_classnames.json", "templates": "en_zeroshot_classification_templates.json",
            "cupl": "cupl_prompts.json"}[kind]
    try:
        table = json.loads((resources.files("clip_benchmark") / "datasets" / file).read_text())
    except ModuleNotFoundError:
        return {}
    if kind == "templates":
        table = {k: [t.replace("{c}", "{}") for t in v] for k, v in table.items() if _usable(v)}
    if kind == "classnames":
        table = {k: v for k, v in table.items() if _usable(v)}
    return table


_CLASSNAMES = {
    "imagenet": lambda: list(_openclip().IMAGENET_CLASSNAMES),
    "imagenet-wordnet": _wordnet_imagenet,
    "shapeworld": lambda: _world_shapes(False),
    "shapeworld-synonyms": lambda: _world_shapes(True),
    "shapeworld-colour": _world_colours,
}
_TEMPLATES = {
    "openai-imagenet": lambda: [t("{}") for t in _openclip().OPENAI_IMAGENET_TEMPLATES],
    "openai-imagenet-7": lambda: [t("{}") for t in _openclip().SIMPLE_IMAGENET_TEMPLATES],
    "shapeworld": _world_templates,
    "name-only": lambda: ["{}"],
}


def list_classnames() -> list[str]:
    """Names of every class-name set (lab's own, then clip-benchmark's as 'cb-<dataset>')."""
    return list(_CLASSNAMES) + [f"cb-{k}" for k in _clip_benchmark("classnames")]


def list_templates() -> list[str]:
    """Names of every template set (lab's own, then clip-benchmark's as 'cb-<dataset>')."""
    return list(_TEMPLATES) + [f"cb-{k}" for k in _clip_benchmark("templates")]


def list_class_prompts() -> list[str]:
    """Names of per-class prompt sets (CuPL's generated ImageNet descriptions)."""
    return [f"cupl-{k}" for k in _clip_benchmark("cupl")]


def _read_json(path: Path, what: str, expected: str = "a JSON list of strings"):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BadInput(f"{what} file {path}: {e}; expected {expected}") from e


def _resolve(spec, table: dict, prefix_tables: dict, what: str, lister) -> list[str]:
    if isinstance(spec, (list, tuple)):
        items = list(spec)
    elif isinstance(spec, str) and spec in table:
        items = table[spec]()
    elif isinstance(spec, str) and spec.startswith("cb-") and spec[3:] in prefix_tables:
        items = list(prefix_tables[spec[3:]])
    elif isinstance(spec, str) and (spec.endswith(".json") or Path(spec).is_file()):
        items = _read_json(Path(spec), what)
    else:
        raise BadInput(f"unknown {what} set {spec!r}: pass one of {lister()}, a list, or a JSON file")
    if not _usable(items):
        raise BadInput(f"{what} set {spec if isinstance(spec, str) else '(list)'} must be a non-empty list of "
                       f"non-empty strings")
    return items


def classnames(spec) -> list[str]:
    """A class-name list from a registry name, a list, or a JSON file holding a list."""
    return _resolve(spec, _CLASSNAMES, _clip_benchmark("classnames"), "class-name", list_classnames)


def templates(spec) -> list[str]:
    """A template list ('{}' marks the class name) from a registry name, a list, or a JSON file."""
    out = _resolve(spec, _TEMPLATES, _clip_benchmark("templates"), "template", list_templates)
    bad = [t for t in out if "{}" not in t]
    if bad:
        raise BadInput(f"templates need '{{}}' where the class name goes; these lack it: {bad[:3]}")
    return out


def class_prompts(names: list[str], template_list: list[str]) -> list[list[str]]:
    """Every template filled with every class name: [[t.format(name) for t in templates] per class]."""
    return [[t.replace("{}", n) for t in template_list] for n in names]


def per_class_prompts(spec, names: list[str]) -> list[list[str]]:
    """Per-class prompt lists (CuPL style) aligned to `names`: from 'cupl-imagenet1k' or a JSON file
    {class name: [prompts]}. Repeated names get the same prompts; a name with none is an error."""
    if isinstance(spec, dict):
        table = spec
    elif isinstance(spec, str) and spec.startswith("cupl-") and spec[5:] in _clip_benchmark("cupl"):
        table = _clip_benchmark("cupl")[spec[5:]]
    elif isinstance(spec, str) and Path(spec).is_file():
        table = _read_json(Path(spec), "per-class prompt", "a JSON object {class name: [prompts]}")
    else:
        raise BadInput(f"unknown per-class prompt set {spec!r}: pass one of {list_class_prompts()}, a dict, "
                       f"or a JSON file {{class name: [prompts]}}")
    if not isinstance(table, dict):
        raise BadInput(f"per-class prompts {spec!r} must be a JSON object {{class name: [prompts]}}")
    malformed = [n for n, v in table.items() if not _usable(v)]
    if malformed:
        raise BadInput(f"per-class prompts for {malformed[:5]} are not non-empty lists of strings")
    missing = [n for n in names if n not in table]
    if missing:
        raise BadInput(f"per-class prompts {spec if isinstance(spec, str) else '(dict)'} have none for "
                       f"{len(missing)} classes, e.g. {missing[:5]}; add them or use templates")
    return [list(table[n]) for n in names]
