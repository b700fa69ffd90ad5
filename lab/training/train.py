"""Contrastive (CLIP) training for any open_clip architecture, on ShapeWorld or your own pairs.

Symmetric InfoNCE over image-text pairs with a learnable temperature (initialised to 1/0.07,
logit scale clamped at 100), AdamW with linear warmup and cosine decay, autocast on GPU,
gradient accumulation, checkpoint + resume, a progress bar, and a per-epoch log of loss and
zero-shot accuracy on a validation split. The output is a lab checkpoint: load it with
lab.load_model(path).

    python -m lab train --arch lab-vit-tiny --steps 2500 --out lab/checkpoints/lab-vit-tiny.pt
    python -m lab train --arch RN50 --data pairs.csv --steps 10000 --batch-size 256 --out my.pt

ShapeWorld batches hold each (shape, colour) pair at most once: two identical captions in one
batch would be false negatives for InfoNCE. A CSV/JSONL of `path,caption` trains on your data.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.transform import PreprocessCfg, image_transform_v2
from tqdm.auto import tqdm

from ..studies import zeroshot
from ..core.checkpoints import LAB_FORMAT
from ..data import shapeworld, world
from ..core.images import decode_bytes
from ..core._build import build_module
from ..core.models import pick_device
from ..core.registry import open_clip
from ..processes import loader_options
from ..threads import fit_torch

__all__ = ["TrainConfig", "WorldPairs", "FilePairs", "clip_loss", "lr_at", "zero_shot_accuracy", "train", "main"]


@dataclass
class TrainConfig:
    arch: str = "lab-vit-tiny"
    data: str = "world"            # "world" or a CSV/JSONL file of path,caption
    steps: int = 3200
    batch_size: int = 80
    accum: int = 1                 # gradient accumulation steps per optimizer step
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: int = 200
    epoch_steps: int = 250         # log + checkpoint every this many steps
    val_n: int = 400
    workers: int = 1               # DataLoader workers that render and preprocess batches
    seed: int = 0                  # weights' init and, when not 0, a ShapeWorld batch stream of its own
    device: str | None = None
    out: str = "runs/train/model.pt"
    init: str = ""                 # start from this lab checkpoint's weights (fine-tuning); empty: random
    literate: float = 0.0          # share of ShapeWorld images with their shape's name written on a band
    word_only: float = 0.0         # share of ShapeWorld images that are the shape's name alone
    backgrounds: float = 0.0       # share of ShapeWorld images on a widened background (world.BACKGROUNDS)
    model_cfg: dict = field(default_factory=dict)


class WorldPairs:
    """ShapeWorld training batches: a random permutation of (shape, colour) pairs per batch,
    so no two captions in a batch describe the same object class. With `literate` > 0 that share
    of images carries its shape's name on a band away from the objects (lab.data.studies); with
    `word_only` > 0 that share is the name alone, written in the pair's colour on the background and
    captioned 'a picture of a <colour> <shape>.'; with `backgrounds` > 0 that share of scenes sits on
    a dark, saturated, muted or textured background (world.widen_background)."""

    def __init__(self, image_size: int = 64, literate: float = 0.0, word_only: float = 0.0,
                 backgrounds: float = 0.0, seed: int = 0):
        self.image_size, self.literate, self.word_only = image_size, literate, word_only
        self.backgrounds = backgrounds
        self.stream = (seed,) if seed else ()  # seed 0: the stream every earlier run trained on
        self.combos = [(s, c) for s in world.SHAPES for c in world.COLOURS]

    def _reading(self, scene, r):
        """A scene drawn as a literate training pair, or None for a plain one (no extra draws then)."""
        from ..data import studies
        u = r.random()
        if u >= self.literate + self.word_only:
            return None
        top = bool(r.integers(2))
        box = studies.band_box(top, self.image_size)
        if u < self.word_only:
            empty = replace(scene, count=0, cells=[], angles=[], jitter=[])
            image = world.render(empty, self.image_size, with_masks=False)[0]
            return (studies.write_word(image, scene.shape, box, fill=scene.rgb),  # one (shape, colour) per batch
                    f"a picture of {world._a(f'{scene.colour} {scene.shape}')}.")
        rows = (3, 4, 5, 6, 7, 8) if top else (0, 1, 2, 3, 4, 5)
        scene = studies.place(scene, r, min(scene.count, 2), rows)
        image = world.render(scene, self.image_size, with_masks=False)[0]
        return studies.write_word(image, scene.shape, box), world.caption(scene, r)

    def batch(self, step: int, size: int):
        if size > len(self.combos):
            raise ValueError(f"ShapeWorld batches hold each of {len(self.combos)} (shape, colour) pairs at most once; "
                             f"use --batch-size <= {len(self.combos)} and --accum for larger effective batches")
        rng = world.item_rng(world.SPLIT_SEEDS["train"], step, *self.stream)
        images, captions = [], []
        for j, k in enumerate(rng.permutation(len(self.combos))[:size]):
            r = world.item_rng(world.SPLIT_SEEDS["train"], step, j, *self.stream)
            scene = world.draw_scene(r, *self.combos[k])
            if self.backgrounds and r.random() < self.backgrounds:
                scene = world.widen_background(scene, r)
            pair = self._reading(scene, r) if self.literate or self.word_only else None
            if pair is None:
                pair = world.render(scene, self.image_size, with_masks=False)[0], world.caption(scene, r)
            images.append(pair[0])
            captions.append(pair[1])
        return images, captions


class _Batches(torch.utils.data.Dataset):
    """Batch k of a pair source, preprocessed; built in a DataLoader worker while the model trains."""

    def __init__(self, pairs, preprocess, tokenizer, batch_size, start):
        self.pairs, self.preprocess, self.tokenizer = pairs, preprocess, tokenizer
        self.batch_size, self.start = batch_size, start

    def __len__(self):
        return 1 << 30

    def __getitem__(self, k):
        images, captions = self.pairs.batch(self.start + k, self.batch_size)
        return torch.stack([self.preprocess(im) for im in images]), self.tokenizer(captions)  # (B, 3, H, W), (B, L)


class FilePairs:
    """Image-caption pairs from a CSV (columns path, caption) or JSONL file; relative paths are
    resolved against the file's folder. Unreadable images are skipped with a warning."""

    def __init__(self, path: str):
        import pandas as pd
        df = pd.read_json(path, lines=True) if path.endswith((".jsonl", ".json")) else pd.read_csv(path)
        missing = {"path", "caption"} - set(df.columns)
        if missing:
            raise ValueError(f"{path} lacks columns {sorted(missing)}; expected path,caption")
        base = os.path.dirname(os.path.abspath(path))
        self.paths = [p if os.path.isabs(p) else os.path.join(base, p) for p in df["path"]]
        self.captions = df["caption"].astype(str).tolist()

    def batch(self, step: int, size: int):
        images, captions, bad = [], [], []
        for attempt in range(10):  # redraw while a whole batch is unreadable
            rng = np.random.default_rng([7, step, attempt])
            for k in rng.choice(len(self.paths), size=min(size, len(self.paths)), replace=False):
                try:
                    with open(self.paths[k], "rb") as f:
                        images.append(decode_bytes(f.read()))
                    captions.append(self.captions[k])
                except (OSError, ValueError) as e:
                    bad.append(f"{self.paths[k]}: {e}")
            if images:
                break
        if bad:
            warnings.warn(f"skipped {len(bad)} unreadable images, e.g. {bad[0]}")
        if not images:
            raise ValueError(f"no readable images in {len(bad)} tries; check the paths in the pairs file")
        return images, captions


def clip_loss(image_feats, text_feats, logit_scale):
    """Symmetric InfoNCE: (B, D) x (B, D), matching rows are the positives."""
    logits = logit_scale.exp() * F.normalize(image_feats, dim=-1) @ F.normalize(text_feats, dim=-1).T  # (B, B)
    target = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))


@torch.no_grad()
def zero_shot_accuracy(module, tokenizer, preprocess, dataset, tasks=("shape", "colour"), device="cpu") -> dict:
    """Zero-shot top-1 per task on a ShapeWorld split, with the world's prompt ensembles."""
    module.eval()
    pixels = torch.stack([preprocess(dataset.source(i)) for i in range(len(dataset))]).to(device)
    img = F.normalize(torch.cat([module.encode_image(b) for b in pixels.split(256)]).float(), dim=-1).cpu().numpy()
    out = {}
    for task in tasks:
        weights = np.stack([zeroshot.ensemble(module.encode_text(tokenizer(p).to(device)).float().cpu().numpy())
                            for p in world.task_prompts(task).values()])
        out[task] = zeroshot.accuracy(img, weights, dataset.task_labels(task))
    module.train()
    return out


def _param_groups(module, weight_decay):
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        (no_decay if p.ndim < 2 or "logit_scale" in name or "embedding" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _save(path, module, cfg, model_cfg, preprocess_cfg, log, step, optimizer=None, scaler=None, half=False,
          lineage=()):
    state = {k: (v.half() if half and v.is_floating_point() else v).cpu() for k, v in module.state_dict().items()}
    payload = {"format": LAB_FORMAT, "arch": cfg.arch, "model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg,
               "state_dict": state, "train_cfg": asdict(cfg), "log": log, "step": step, "lineage": list(lineage)}
    if optimizer is not None:
        payload["optimizer"], payload["scaler"] = optimizer.state_dict(), scaler.state_dict()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save(payload, path + ".tmp")
    os.replace(path + ".tmp", path)  # a crash mid-save never leaves a broken checkpoint


def train(cfg: TrainConfig, progress: bool = True) -> list[dict]:
    """Train; returns the per-epoch log. Resumes from `cfg.out + '.resume'` when present."""
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    model_cfg = copy.deepcopy(cfg.model_cfg or open_clip().get_model_config(cfg.arch))
    if model_cfg is None:
        raise KeyError(f"unknown architecture {cfg.arch!r}")
    module = build_module(model_cfg).to(device)
    module.logit_scale.data.fill_(math.log(1 / 0.07))
    lineage = []  # the training runs this one continues, oldest first (each: train_cfg, log)
    if cfg.init:  # a lab checkpoint (tensors and plain data only: nothing in it is executed)
        parent = torch.load(cfg.init, map_location="cpu", weights_only=True)
        module.load_state_dict({k: v.float() for k, v in parent["state_dict"].items()})
        lineage = parent.get("lineage", []) + [{"train_cfg": parent.get("train_cfg", {}), "log": parent.get("log", [])}]
    size = module.visual.image_size
    size = size if isinstance(size, int) else size[0]
    preprocess_cfg = asdict(PreprocessCfg(size=size))
    preprocess = image_transform_v2(PreprocessCfg(size=size), is_train=False)
    tokenizer = open_clip().get_tokenizer(cfg.arch, context_length=model_cfg["text_cfg"]["context_length"])
    pairs = WorldPairs(literate=cfg.literate, word_only=cfg.word_only, backgrounds=cfg.backgrounds, seed=cfg.seed) \
        if cfg.data == "world" else FilePairs(cfg.data)
    val = shapeworld.WorldDataset("val", n=cfg.val_n) if cfg.data == "world" else None
    optimizer = torch.optim.AdamW(_param_groups(module, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    log, start = [], 0
    resume = cfg.out + ".resume"
    if os.path.exists(resume):
        ckpt = torch.load(resume, map_location="cpu", weights_only=True)
        module.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        log, start = ckpt["log"], ckpt["step"]
    autocast = torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    module.train()
    t0, losses = time.time() - 60 * (log[-1]["minutes"] if log else 0), []  # minutes count across resumes
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=f"train {cfg.arch}", disable=not progress)
    batches = iter(torch.utils.data.DataLoader(
        _Batches(pairs, preprocess, tokenizer, cfg.batch_size, start * cfg.accum), batch_size=None,
        num_workers=cfg.workers, prefetch_factor=4 if cfg.workers else None, pin_memory=device.type == "cuda",
        **loader_options(cfg.workers)))
    for step in bar:
        fit_torch()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        for _ in range(cfg.accum):  # accumulation averages micro-batch losses; negatives stay within a micro-batch
            x, t = (v.to(device, non_blocking=True) for v in next(batches))
            with autocast:
                loss = clip_loss(module.encode_image(x), module.encode_text(t), module.logit_scale)
            scaler.scale(loss / cfg.accum).backward()
            losses.append(loss.item())
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            module.logit_scale.clamp_(0, math.log(100))
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", scale=f"{module.logit_scale.exp().item():.1f}")
        if (step + 1) % cfg.epoch_steps == 0 or step + 1 == cfg.steps:
            row = {"step": step + 1, "loss": float(np.mean(losses)), "minutes": (time.time() - t0) / 60,
                   "logit_scale": module.logit_scale.exp().item()}
            if val is not None:
                row.update({f"val_{k}": v for k, v in zero_shot_accuracy(
                    module, tokenizer, preprocess, val, device=device).items()})
            log.append(row)
            losses = []
            tqdm.write(json.dumps(row))
            _save(resume, module, cfg, model_cfg, preprocess_cfg, log, step + 1, optimizer, scaler, lineage=lineage)
    _save(cfg.out, module, cfg, model_cfg, preprocess_cfg, log, cfg.steps, half=True, lineage=lineage)
    if os.path.exists(resume):
        os.remove(resume)
    return log


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m lab train", description=__doc__.split("\n")[0])
    for f in TrainConfig.__dataclass_fields__.values():
        if f.name == "model_cfg":
            continue
        kind = {"int": int, "float": float}.get(str(f.type), str)
        p.add_argument("--" + f.name.replace("_", "-"), type=kind, default=f.default)
    args = vars(p.parse_args(argv))
    train(TrainConfig(**args))


if __name__ == "__main__":
    main()
