"""ShapeWorld's beyond-zero-shot study for one model: per task (shape, colour, size, count,
position) zero-shot vs the paper's linear probe, few-shot probes and effective shots; retrieval on
the world's caption set. Results are memoized in the lab cache (keyed by the embeddings, labels
and parameters), so a re-run costs cache reads.

    study = task_study(model, tasks=("shape", "count"))    # {"tasks": DataFrame, "curves": DataFrame, "few_shot": DataFrame}
    study = dataset_study(model, train, val, test)          # the same on real labelled data
    table = retrieval_study(model, n_images=1000)           # {"table": ..., "by_named": ...}
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import threads
from ..core import memo
from ..data import Subset, load_dataset, prompts
from ..data.captions import world_captions
from ..data.shapeworld import WorldDataset
from . import linear_probe as lp, retrieval, zeroshot
from .limitations import world_weights

__all__ = ["TASKS", "task_study", "folder_splits", "dataset_study", "retrieval_study"]

TASKS = ("shape", "colour", "size", "count", "position")


def _memoized(name: str, arrays: list, params: dict, cache, compute):
    """compute() -> JSON-able result, kept in the lab cache under a digest of the arrays, parameters
    and this study's code; scikit-learn fits run on one thread (lab.threads.small_work)."""
    def run():
        with threads.small_work():
            return compute()
    return memo.memoized(name, [list(map(np.asarray, arrays)), params], run, cache,
                         code=[__name__, "lab.studies.linear_probe", "lab.studies.retrieval", "lab.studies.zeroshot"],
                         packages=["numpy", "scikit-learn"])


def _features(model, split: str, n: int, tasks) -> tuple[np.ndarray, dict]:
    ds = WorldDataset(split, n)
    x = model.encode_images(ds, progress=False)  # (n, D); the same pixels for every task
    return x, {t: ds.task_labels(t) for t in tasks}


def _probe_row(model, train, val, test, weights: np.ndarray, label: str, ks=(1, 2, 4, 8, 16), seeds=(0, 1, 2),
               cache=True) -> dict:
    """One task: train / val / test as (embeddings, labels) pairs and zero-shot weights (C, D) ->
    {"row": zero_shot, probe summary, effective shots; "curve": the λ search; "few_shot": per k and seed},
    memoized on the arrays and parameters."""
    (xt, yt), (xv, yv), (xs, ys) = train, val, test

    def compute():
        keep = (ys >= 0) & np.isfinite(xs).all(1)
        zs = float((zeroshot.predict(xs[keep], weights) == ys[keep]).mean())
        res = lp.probe(xt, yt, xv, yv, xs, ys, n_classes=len(weights), name=f"{model.name} {label} probe")
        few = lp.few_shot(xt, yt, xv, yv, xs, ys, ks, seeds)
        return {"row": {"zero_shot": zs, **res.summary(), **lp.effective_shots(few, zs)},
                "curve": res.curve.to_dict("list"), "few_shot": few.to_dict("list")}
    params = {"label": label, "model": model.fingerprint, "ks": str(tuple(ks)), "seeds": str(tuple(seeds))}
    return _memoized("probe_row", [xt, xv, xs, yt, yv, ys, weights], params, cache, compute)


def _collect(model, found: dict) -> dict[str, pd.DataFrame]:
    return {"tasks": pd.DataFrame([{"model": model.name, "task": t, **f["row"]} for t, f in found.items()]),
            "curves": pd.concat([pd.DataFrame(f["curve"]).assign(model=model.name, task=t) for t, f in found.items()],
                                ignore_index=True),
            "few_shot": pd.concat([pd.DataFrame(f["few_shot"]).assign(model=model.name, task=t)
                                   for t, f in found.items()], ignore_index=True)}


def task_study(model, tasks=TASKS, n_train: int = 2000, n_val: int = 500, n_test: int = 1000,
               ks=(1, 2, 4, 8, 16), seeds=(0, 1, 2), cache=True) -> dict[str, pd.DataFrame]:
    """ShapeWorld's tasks -> {"tasks": one row per task (zero_shot, probe top1/top5/mean per-class
    recall, lambda, at_edge, effective_shots, bound), "curves": the λ search's validation scores per
    task, "few_shot": one row per task, k and seed}."""
    xt, yt = _features(model, "train", n_train, tasks)
    xv, yv = _features(model, "val", n_val, tasks)
    xs, ys = _features(model, "test", n_test, tasks)
    found = {t: _probe_row(model, (xt, yt[t]), (xv, yv[t]), (xs, ys[t]), world_weights(model, t), t, ks, seeds, cache)
             for t in tasks}
    return _collect(model, found)


def folder_splits(root: str, n: int = 0, seed: int = 0, train_share: float = 0.8):
    """A real class folder as a probe's splits -> (train, val, test): the seeded 'val' half of the
    folder cut train_share / rest into train and val, the 'test' half held out (load_dataset)."""
    pool = load_dataset("folder", root, "val", n, seed)
    order = np.random.default_rng(seed).permutation(len(pool))
    cut = int(train_share * len(pool))
    train, val = Subset(pool, np.sort(order[:cut]), "probe-train"), Subset(pool, np.sort(order[cut:]), "probe-val")
    return train, val, load_dataset("folder", root, "test", n, seed)


def dataset_study(model, train, val, test, templates="openai-imagenet", ks=(1, 2, 4, 8, 16), seeds=(0, 1, 2),
                  cache=True) -> dict[str, pd.DataFrame]:
    """The same study on any labelled datasets (e.g. the halves of a class folder): zero-shot with
    the classes' names in `templates` against the probe and few-shot probes; the task is the
    test set's name."""
    W = zeroshot.class_weights(model, prompts.class_prompts(list(test.classes), prompts.templates(templates)))
    xy = [(model.encode_images(d, progress=False), d.labels["label"].to_numpy()) for d in (train, val, test)]
    fewest = np.bincount(xy[0][1][xy[0][1] >= 0]).min()
    ks = [k for k in ks if k <= fewest]  # k-shot needs k training images of every class
    name = getattr(test, "name", "dataset")
    return _collect(model, {name: _probe_row(model, *xy, W, name, ks, seeds, cache)})


def retrieval_study(model, caption_set=None, n_images: int = 1000, prefix: str = "") -> dict[str, pd.DataFrame]:
    """Retrieval both ways on a caption set (default: the world's, n_images x 5 captions); `prefix`
    is prepended to every caption (the paper prepends 'a photo of ' on Flickr30k and MSCOCO).
    -> {"table": direction x positives, "by_named": text->image R@k by which attributes a caption
    names (world captions only)}."""
    cs = caption_set if caption_set is not None else world_captions(n_images)
    img = model.encode_images(cs.images, progress=False)  # (N, D)
    txt = model.encode_texts([prefix + c for c in cs.captions], progress=False)  # (T, D)
    out = {"table": retrieval.evaluate(img, txt, cs).assign(model=model.name)}
    if cs.stated is not None:
        out["by_named"] = retrieval.by_group(img, txt, cs, cs.named()).assign(model=model.name)
    return out
