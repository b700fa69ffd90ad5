"""Build the shift suites' files: every suite as class folders, a contact sheet, and the adversarial
suite's selection (lab/data/adversarial.json, which lab.data.suites loads).

    python -m lab suites materialize --out data/suites --n 200
    python -m lab suites sheet --out docs/shapeworld-suites.png
    python -m lab suites build-adversarial [--candidates 12000]

The adversarial suite follows ImageNet-A's recipe: draw natural candidates on the class subset,
keep those a supervised CNN trained on the clean split gets wrong.

As ImageNet-A's candidates came from outside ImageNet, ours come from the generator with natural
drift (the v2 parameters: more colour and position jitter, darker backgrounds); the CNN is a
standard small classifier trained briefly, as ImageNet-A's ResNet-50 was a standard model, so it is
right on most candidates and the kept ones are the natural hard cases.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..data.shapeworld import contact_sheet, materialize, suite_datasets
from ..data.suites import ADVERSARIAL_FILE, SPLIT_SEEDS, SUBSET, SUITES, adversarial_indices
from ..data.world import SHAPES, draw_scene, item_rng, render

__all__ = ["build_adversarial", "main"]


def build_adversarial(candidates: int = 12000, cnn_steps: int = 150) -> list[int]:
    from ..studies.baselines import predict, train_cnn  # torch: only when the suite is rebuilt
    model = train_cnn(steps=cnn_steps)
    seed = SPLIT_SEEDS["test"] + SUITES["adversarial"]["offset"]
    scenes = [draw_scene(item_rng(seed, i), shapes=SUBSET, drift=1.0) for i in range(candidates)]
    pred = predict(model, [render(s)[0] for s in scenes])
    kept = [i for i, (s, p) in enumerate(zip(scenes, pred)) if SHAPES[p] != s.shape]
    accuracy = 1 - len(kept) / candidates
    adversarial_indices.cache_clear()
    ADVERSARIAL_FILE.write_text(json.dumps({
        "recipe": f"drifted draws (drift=1.0) on {SUBSET}, kept where a SmallCNN (lab.studies.baselines.train_cnn, "
                  f"{cnn_steps} steps, seed 0) trained on the clean training split is wrong",
        "candidates": candidates, "cnn_accuracy_on_candidates": round(accuracy, 4), "indices": kept}, indent=1))
    print(f"CNN accuracy on {candidates} candidates: {accuracy:.3f}; kept {len(kept)} -> {ADVERSARIAL_FILE}")
    return kept


def main(argv=None):
    import argparse
    from tqdm.auto import tqdm
    p = argparse.ArgumentParser(prog="python -m lab suites", description="ShapeWorld shift suites")
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
        build_adversarial(args.candidates)


if __name__ == "__main__":
    main()
