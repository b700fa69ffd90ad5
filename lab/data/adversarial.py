"""Rebuild the adversarial suite (ImageNet-A's recipe): draw natural candidates on the class
subset, keep those a supervised CNN trained on the clean split gets wrong.

As ImageNet-A's candidates came from outside ImageNet, ours come from the generator with natural
drift (the v2 parameters: more colour and position jitter, darker backgrounds); the CNN is a
standard small classifier trained briefly, as ImageNet-A's ResNet-50 was a standard model, so it is
right on most candidates and the kept ones are the natural hard cases.

    python -m lab.data.suites build-adversarial [--candidates 12000]
"""
from __future__ import annotations

import json

from .suites import ADVERSARIAL_FILE, SPLIT_SEEDS, SUBSET, SUITES, adversarial_indices
from .world import SHAPES, draw_scene, item_rng, render


def build_adversarial(candidates: int = 12000, cnn_steps: int = 150) -> list[int]:
    from ..supervised import predict, train_cnn
    model = train_cnn(steps=cnn_steps)
    seed = SPLIT_SEEDS["test"] + SUITES["adversarial"]["offset"]
    scenes = [draw_scene(item_rng(seed, i), shapes=SUBSET, drift=1.0) for i in range(candidates)]
    pred = predict(model, [render(s)[0] for s in scenes])
    kept = [i for i, (s, p) in enumerate(zip(scenes, pred)) if SHAPES[p] != s.shape]
    accuracy = 1 - len(kept) / candidates
    adversarial_indices.cache_clear()
    ADVERSARIAL_FILE.write_text(json.dumps({
        "recipe": f"drifted draws (drift=1.0) on {SUBSET}, kept where a SmallCNN (lab.supervised.train_cnn, "
                  f"{cnn_steps} steps, seed 0) trained on the clean training split is wrong",
        "candidates": candidates, "cnn_accuracy_on_candidates": round(accuracy, 4), "indices": kept}, indent=1))
    print(f"CNN accuracy on {candidates} candidates: {accuracy:.3f}; kept {len(kept)} -> {ADVERSARIAL_FILE}")
    return kept
