"""Rebuild the adversarial suite (ImageNet-A's recipe): draw natural candidates from the clean
generator on the class subset, keep those a supervised CNN trained on the clean split gets wrong.

    python -m lab.data.suites build-adversarial [--candidates 6000]
"""
from __future__ import annotations

import json

from .suites import ADVERSARIAL_FILE, SPLIT_SEEDS, SUBSET, SUITES
from .world import SHAPES, draw_scene, item_rng, render


def build_adversarial(candidates: int = 6000, cnn_steps: int = 600) -> list[int]:
    from ..supervised import predict, train_cnn
    model = train_cnn(steps=cnn_steps)
    seed = SPLIT_SEEDS["test"] + SUITES["adversarial"]["offset"]
    scenes = [draw_scene(item_rng(seed, i), shapes=SUBSET) for i in range(candidates)]
    pred = predict(model, [render(s)[0] for s in scenes])
    kept = [i for i, (s, p) in enumerate(zip(scenes, pred)) if SHAPES[p] != s.shape]
    accuracy = 1 - len(kept) / candidates
    ADVERSARIAL_FILE.write_text(json.dumps({
        "recipe": f"clean draws on {SUBSET}, kept where a SmallCNN (lab.supervised.train_cnn, {cnn_steps} steps, "
                  "seed 0) trained on the clean training split is wrong",
        "candidates": candidates, "cnn_accuracy_on_candidates": round(accuracy, 4), "indices": kept}, indent=1))
    print(f"CNN accuracy on {candidates} candidates: {accuracy:.3f}; kept {len(kept)} -> {ADVERSARIAL_FILE}")
    return kept
