"""Evaluate a CLIP zero-shot on ShapeWorld (clean test split and every shift suite) and, for lab's
built-in models, write the model card beside the checkpoint.

    python -m lab card lab-vit-tiny            # evaluates, writes lab/checkpoints/lab-vit-tiny.md
    python -m lab card ViT-B-32 --n 500 --no-write
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ..core.checkpoints import read_checkpoint
from ..core.models import load_model
from ..core.registry import builtin_models
from ..data import shapeworld, world
from ..data.shapeworld import suite_datasets
from ..data.studies import backgrounds_set, typographic_sets
from ..studies import zeroshot
from ..studies.limitations import background_study, reading_effect, typographic_study

__all__ = ["TASKS", "task_accuracy", "evaluate_world", "typographic", "backgrounds", "card_text", "main"]

TASKS = ["shape", "colour", "count", "size", "position"]


def task_accuracy(model, dataset, task: str, emb: np.ndarray) -> float:
    shapes = dataset.classes if task == "shape" else world.SHAPES
    weights = zeroshot.class_weights(model, world.task_prompts(task, shapes=shapes))
    return zeroshot.accuracy(emb, weights, dataset.task_labels(task))


def evaluate_world(model, n: int = 2000, suite_n: int = 1000, corruption_n: int = 200, progress=False) -> dict:
    """Zero-shot accuracies: {'clean': {task: acc}, 'suites': {suite: {task: acc}},
    'corruptions': {type: [acc at severity 1..5]}}."""
    test = shapeworld.WorldDataset("test", n)
    emb = model.encode_images(test, progress=progress)
    out = {"clean": {t: task_accuracy(model, test, t, emb) for t in TASKS}, "suites": {}, "corruptions": {}}
    for rel, ds in suite_datasets(suite_n, corruption_n=corruption_n).items():
        if rel == "test":
            continue
        e = model.encode_images(ds, progress=progress)
        if rel.startswith("corruptions/"):
            out["corruptions"].setdefault(rel.split("/")[1], []).append(task_accuracy(model, ds, "shape", e))
        else:
            tasks = ["shape"] if rel == "sketch" else ["shape", "colour"]
            out["suites"][rel] = {t: task_accuracy(model, ds, t, e) for t in tasks}
    return out


def typographic(model, n: int = 300) -> dict:
    """Shape top-1 under each typographic condition and the reading effect (lab.studies.limitations)."""
    table, _ = typographic_study(model, typographic_sets(n))
    return {"top1": dict(zip(table["condition"], table["top1"].astype(float))), "reading_effect": reading_effect(table)}


def backgrounds(model, n: int = 400) -> dict:
    """Shape and colour top-1 of drawn shapes per plain background kind (lab.studies.limitations)."""
    table = background_study(model, backgrounds_set(n))
    return {kind: dict(zip(rows["task"], rows["top1"].astype(float)))
            for kind, rows in table.groupby("background", sort=False)}


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _command(cfg: dict, init: str, out: str) -> str:
    options = [f"--init {init}"] if init else []
    options += [f"--{k.replace('_', '-')} {cfg[k]}" for k in ("literate", "word_only", "backgrounds") if cfg.get(k)]
    if cfg.get("warmup") not in (None, 200):
        options.append(f"--warmup {cfg['warmup']}")
    return " ".join([f"python -m lab train --arch {cfg.get('arch')}", *options, f"--steps {cfg.get('steps')}",
                     f"--batch-size {cfg.get('batch_size')} --lr {cfg.get('lr')} --seed {cfg.get('seed')} --out {out}"])


def _own_stages(name: str, meta: dict) -> list[dict]:
    """The training runs that made these weights, oldest first (each: train_cfg, log), from the last one
    that started from another built-in model's checkpoint: that model's own runs are on its own card."""
    stages = meta.get("lineage", []) + [{"train_cfg": meta.get("train_cfg", {}), "log": meta.get("log", [])}]
    builtin = {f"{n}.pt" for n in builtin_models() if n != name}  # its own name: an earlier version of itself
    starts = [i for i, s in enumerate(stages) if Path(s["train_cfg"].get("init") or "x").name in builtin]
    return stages[starts[-1]:] if starts else stages


def _commands(name: str, meta: dict) -> list[str]:
    """One command per training run that made the weights (lineage first), with portable paths."""
    stages = [s["train_cfg"] for s in _own_stages(name, meta)]
    outs = [f"stage{i + 1}.pt" for i in range(len(stages) - 1)] + [f"lab/checkpoints/{name}.pt"]
    first_init = stages[0].get("init", "")
    if first_init:  # started from a built-in model: name it by its place in the repository
        first_init = f"lab/checkpoints/{Path(first_init).name}"
    inits = [first_init] + outs[:-1]
    return [_command(cfg, init, out) for cfg, init, out in zip(stages, inits, outs)]


def card_text(name: str, model, meta: dict, results: dict) -> str:
    cfg = meta.get("train_cfg", {})
    log = meta.get("log", [])
    own = _own_stages(name, meta)
    minutes = sum(s["log"][-1]["minutes"] for s in own[:-1] if s.get("log")) + \
        (log[-1]["minutes"] if log else float("nan"))
    parent = Path(own[0]["train_cfg"].get("init") or "").stem  # a built-in model it was fine-tuned from, or ""
    commands = _commands(name, meta)
    clean = results["clean"]
    lines = [
        f"# Model card: {name}",
        "",
        "A tiny CLIP trained by CLIP Lab's own contrastive trainer on ShapeWorld, the lab's procedurally",
        "generated image world, so that every notebook runs offline. It is a teaching and testing model:",
        "it knows ten shapes, eight colours, sizes, counts and positions of ShapeWorld scenes and nothing",
        "of the real world.",
        "",
        "## Model",
        f"- Architecture: open_clip `{meta.get('arch')}` (lab/model_configs/{meta.get('arch')}.json), "
        f"embedding {model.embed_dim}-d, input {model.image_size} px, QuickGELU: {model.quick_gelu}.",
        f"- Config: `{json.dumps(meta.get('model_cfg'))}`",
        "- Stored as fp16 (`lab.load_model` loads it as fp32).",
        "",
        *(["Literate: some of its training images carry their shape's name written on a band, some are the",
           "name alone, so it learned to read the world's shape names, as CLIP learned to read from the web.",
           "Notebook 06's typographic-attack study shows the attack steering it.", ""]
          if any(s["train_cfg"].get("literate") or s["train_cfg"].get("word_only") for s in own) else []),
        "## Data",
        "ShapeWorld training split (`lab.data.world`, seed stream 1000), drawn fresh every step: one to four",
        "copies of a coloured shape on a plain, gradient or noise background, with captions from the world's",
        "grammar. Each batch holds every (shape, colour) pair at most once, so InfoNCE sees no false negatives.",
        *(["A later stage put a share of the scenes on widened backgrounds (`--backgrounds`: dark, saturated,",
           "muted and photo-like textures, `world.widen_background`), so drawings learners upload on any plain",
           "background are recognised like the world's own."] if any(
              s["train_cfg"].get("backgrounds") for s in own) else []),
        "",
        "## Training",
        *[f"- Command: `{c}`" for c in commands],
        f"- Seed {cfg.get('seed')}, {cfg.get('steps')} steps of batch {cfg.get('batch_size')}, AdamW lr "
        f"{cfg.get('lr')} (warmup {cfg.get('warmup')}, cosine), weight decay {cfg.get('weight_decay')}, "
        "learnable temperature from 1/0.07, clamped at 100.",
        f"- Training time on the 2-core CPU it was trained on: {minutes:.1f} min in all (`torch` "
        f"{torch.__version__})" + (f", from `{parent}`'s weights (its own card gives its training)." if parent else "."),
        "",
        "Validation log (zero-shot, 400 val images):",
        "",
        "| step | loss | shape | colour | minutes |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['step']} | {r['loss']:.3f} | {_pct(r.get('val_shape', float('nan')))} | "
              f"{_pct(r.get('val_colour', float('nan')))} | {r['minutes']:.1f} |" for r in log]
    lines += [
        "",
        "## Zero-shot accuracy, clean test split (2,000 images, prompt ensembles of `world.task_prompts`)",
        "",
        "| shape | colour | count | size | position |",
        "|---:|---:|---:|---:|---:|",
        "| " + " | ".join(_pct(clean[t]) for t in TASKS) + " |",
        "",
        "Count, size and position are reported as they are (chance: 25 %, 33 %, 11 %). Like CLIP, the",
        "model is far weaker at counting and spatial relations than at object identity; here also by",
        "construction, since a batch never holds two captions that differ only in those attributes, so",
        "the contrastive loss rarely needs them.",
        "",
        "## Distribution shifts (shape / colour top-1; recipes in lab/data/suites.py)",
        "",
        "| suite | shape | colour |",
        "|---|---:|---:|",
        f"| clean test | {_pct(clean['shape'])} | {_pct(clean['colour'])} |",
    ]
    for suite, accs in results["suites"].items():
        lines.append(f"| {suite} | {_pct(accs['shape'])} | {_pct(accs['colour']) if 'colour' in accs else 'n/a'} |")
    lines += ["", "Corruptions (shape top-1 at severity 1 → 5, 200 images each):", "",
              "| corruption | 1 | 2 | 3 | 4 | 5 |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {c} | " + " | ".join(_pct(a) for a in accs) + " |" for c, accs in results["corruptions"].items()]
    if "backgrounds" in results:
        kinds = results["backgrounds"]
        lines += ["", "## Drawn shapes on plain backgrounds (`lab.data.studies.backgrounds_set`, 100 scenes each)", "",
                  "| background | shape | colour |", "|---|---:|---:|"]
        lines += [f"| {kind} | {_pct(a['shape'])} | {_pct(a['colour'])} |" for kind, a in kinds.items()]
        lines += ["", "`plain` is the world's own light backgrounds; the test set's scenes are drawn apart from "
                  "the training split."]
    if "typographic" in results:
        typo = results["typographic"]
        lines += ["", "## Typographic attacks (300 scenes, a word on a band beside the objects; shape top-1)", "",
                  "| " + " | ".join(typo["top1"]) + " | reading effect |",
                  "|" + "---:|" * (len(typo["top1"]) + 1),
                  "| " + " | ".join(_pct(a) for a in typo["top1"].values()) + f" | {typo['reading_effect']:+.2f} |",
                  "", "Reading effect: how much more often the written class wins under a wrong class name than "
                  "under a nonsense word (lab.studies.limitations.reading_effect)."]
    lines += ["", "## Limitations and use",
              "Trained only on synthetic scenes; its embeddings say nothing about real photographs, people or",
              "groups. Use it to learn and test the lab's tools; study real CLIPs for real questions."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m lab card")
    p.add_argument("model")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    model = load_model(args.model)
    results = evaluate_world(model, args.n, progress=True)
    results["typographic"] = typographic(model)
    results["backgrounds"] = backgrounds(model)
    print(json.dumps(results, indent=1))
    path = builtin_models().get(args.model)
    if path is not None and not args.no_write:
        _, meta = read_checkpoint(path)
        path.with_suffix(".md").write_text(card_text(args.model, model, meta, results))
        path.with_suffix(".json").write_text(json.dumps(results, indent=1))
        print(f"wrote {path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
