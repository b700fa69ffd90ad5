"""Small supervised CNN classifiers trained on ShapeWorld's clean training split.

They are the "fitted to the distribution" baselines: the adversarial suite keeps the natural
examples such a classifier gets wrong (ImageNet-A's recipe), and robustness studies compare
zero-shot CLIP against them.

    model = train_cnn(steps=600); predict(model, images) -> class indices
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data import shapeworld, world
from ..threads import fit_torch

__all__ = ["SmallCNN", "to_tensor", "train_cnn", "fit_cnn", "predict"]


class SmallCNN(nn.Module):
    def __init__(self, n_classes: int, width: int = 32):
        super().__init__()
        layers, c_in = [], 3
        for c in (width, width * 2, width * 4):
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, n_classes)

    def forward(self, x):                          # (B, 3, H, W)
        return self.head(self.features(x).mean((2, 3)))  # (B, n_classes)


def to_tensor(images) -> torch.Tensor:
    """PIL images or (H, W, 3) uint8 arrays -> (B, 3, H, W) float in [-1, 1]."""
    a = np.stack([np.asarray(im, dtype=np.float32) for im in images]) / 127.5 - 1.0
    return torch.from_numpy(a).permute(0, 3, 1, 2)


def train_cnn(steps: int = 600, batch_size: int = 64, width: int = 32, seed: int = 0, task: str = "shape",
              progress: bool = True) -> SmallCNN:
    """Train on freshly drawn clean training scenes (own seed stream, disjoint from CLIP's)."""
    torch.manual_seed(seed)
    classes = shapeworld.WorldDataset.task_classes(task)
    model = SmallCNN(len(classes), width)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    model.train()
    for step in tqdm(range(steps), desc=f"train CNN ({task})", disable=not progress):
        fit_torch()
        scenes = [world.draw_scene(world.item_rng(world.SPLIT_SEEDS["train"] + 77, step, j)) for j in range(batch_size)]
        x = to_tensor([world.render(s)[0] for s in scenes])
        y = torch.tensor([classes.index(getattr(s, task)) for s in scenes])
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def fit_cnn(images, labels, n_classes: int, width: int = 16, epochs: int = 5, batch_size: int = 64,
            seed: int = 0, progress: bool = False) -> SmallCNN:
    """Train a SmallCNN for `epochs` passes over a fixed set of images (PIL) and labels (ints)."""
    torch.manual_seed(seed)
    x, y = to_tensor(images), torch.tensor(np.asarray(labels))
    model = SmallCNN(n_classes, width)
    steps = epochs * -(-len(x) // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in tqdm(range(epochs), desc=f"train CNN w{width}", disable=not progress):
        for idx in torch.randperm(len(x), generator=g).split(batch_size):
            fit_torch()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def predict(model: SmallCNN, images, batch_size: int = 256) -> np.ndarray:
    model.eval()
    return np.concatenate([model(to_tensor(images[s:s + batch_size])).argmax(1).numpy()
                           for s in range(0, len(images), batch_size)])
