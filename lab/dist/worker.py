"""What runs inside Ray's worker processes for `lab.dist`: the encoder (one model per actor), the
adapters that turn Ray's raw-bytes readers into (item, data) rows, and the grid's evaluation task.

Nothing here opens the SQLite cache: models are loaded with `_NoCache`, and results go back to the
driver, which alone writes the run folder and the cache.
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from ..core.cache import EmbeddingCache
from ..core.device_decode import DeviceResize, device_jpeg, device_pixels
from ..core.encoding import NON_FINITE, error_text, text_key
from ..core.images import decode_bytes, file_key
from ..data.folder import IMAGE_EXTENSIONS
from ..errors import LabError

__all__ = ["where", "load_worker_model", "rows_from_files", "rows_from_shards", "decode_batch", "Encoder",
           "evaluate_pair"]


class _NoCache(EmbeddingCache):
    """A cache that remembers nothing and never opens a file: what workers load models with."""

    def __init__(self):
        super().__init__(os.devnull)

    @property
    def conn(self):
        raise RuntimeError("lab.dist workers never open the SQLite cache")

    def get(self, fingerprint, modality, keys):
        return {}

    def put(self, *args):
        pass

    def register_model(self, *args):
        pass

    def model_identity(self, key):
        return None

    def put_model_identity(self, *args):
        pass

    def file_digests(self, stats):
        return {}

    def put_file_digests(self, rows):
        pass


def where() -> tuple[str, int]:
    """(Ray node id, process id) of the caller."""
    import ray
    return ray.get_runtime_context().get_node_id(), os.getpid()


def load_worker_model(load_args: dict, fingerprint: str, device: str, threads: int):
    """The driver's model, built here; refuses to run when it is not the same model (other weights,
    other open_clip or lab version on this node)."""
    import torch
    torch.set_num_threads(threads)  # one model per worker: its threads, not every core
    from ..core.models import load_model
    model = load_model(**load_args, device=device, cache=_NoCache())
    if model.fingerprint != fingerprint:
        raise LabError(f"node {where()[0][:12]} loaded {model.name} with fingerprint {model.fingerprint[:12]}, "
                       f"not the driver's {fingerprint[:12]}: give every node the same model file and the same "
                       "lab, open_clip and torch versions")
    model.module  # built now, so a worker is ready before its first batch
    return model


def rows_from_files(batch: dict) -> dict:
    """read_binary_files(include_paths=True) rows {bytes, path} -> {item, data}."""
    return {"item": np.array([os.path.abspath(p if p.startswith("/") else "/" + p) for p in batch["path"]],
                             dtype=object),
            "data": batch["bytes"]}


def rows_from_shards(df, skip: frozenset = frozenset()):
    """read_webdataset(decoder=None) samples {__key__, __url__, <suffix>: bytes, ...} -> one
    {item: "<shard>::<member>", data} row per image member, except those in `skip`."""
    import pandas as pd
    items, datas = [], []
    for _, sample in df.iterrows():
        url = os.path.abspath(sample["__url__"])
        for suffix, value in sample.items():
            if suffix.startswith("__") or not isinstance(value, (bytes, bytearray)):
                continue
            if os.path.splitext("x." + suffix)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            item = f"{url}::{sample['__key__']}.{suffix}"
            if item not in skip:
                items.append(item)
                datas.append(bytes(value))
    return pd.DataFrame({"item": pd.Series(items, dtype=object), "data": pd.Series(datas, dtype=object)})


_TRANSFORMS: dict = {}  # preprocessing config -> the per-image transform, built once per worker process


def _per_image(preprocess_cfg: dict):
    key = json.dumps(preprocess_cfg, sort_keys=True, default=list)
    if key not in _TRANSFORMS:
        from ..core._towers import eval_transform, split_preprocess
        _TRANSFORMS[key] = split_preprocess(eval_transform(preprocess_cfg))[0]
    return _TRANSFORMS[key]


def decode_batch(batch: dict, preprocess_cfg: dict, max_pixels: int, device_jpegs: bool = False) -> dict:
    """The CPU stage before the encoders: {item, data} -> {item, key, error, pixels (B, 3, H, W)}.
    The key is the sha256 of the file's bytes, wherever they came from (a file, a tar member); the
    image is decoded and preprocessed by the lab's own code (pixel limits, modes, bad input).
    device_jpegs: JPEG files stay undecoded for the encoders' GPU -> {item, key, error, on_device,
    data}: data holds the file's bytes where on_device, else the preprocessed pixels' bytes."""
    per_image = _per_image(preprocess_cfg)
    n = len(batch["item"])
    keys, errors, pixels, on_device = [], [""] * n, [None] * n, [False] * n
    for i, data in enumerate(batch["data"]):
        data = bytes(data)
        keys.append(file_key(hashlib.sha256(data).hexdigest()))
        try:
            if device_jpegs and device_jpeg(data, max_pixels):
                on_device[i], pixels[i] = True, data
            else:
                pixels[i] = per_image(decode_bytes(data, max_pixels)).numpy()  # (3, H, W) uint8
        except Exception as e:  # reported per item, never fatal to the run
            errors[i] = error_text(e)
    out = {"item": batch["item"], "key": np.array(keys, dtype=object), "error": np.array(errors, dtype=object)}
    if device_jpegs:
        data = [p if isinstance(p, bytes) else b"" if p is None else p.tobytes() for p in pixels]
        return {**out, "on_device": np.array(on_device), "data": np.array(data, dtype=object)}
    size = preprocess_cfg["size"]
    blank = next((p for p in pixels if p is not None), None)
    blank = np.zeros((3, *((size, size) if isinstance(size, int) else size)), np.uint8) if blank is None \
        else np.zeros_like(blank)
    return {**out, "pixels": np.stack([blank if p is None else p for p in pixels])}


class Encoder:
    """A Ray Data actor holding one model, with `threads` torch threads: decoded pixels (or texts)
    -> rows {item, key, ok, error, embedding, node, pid}; a bad item is an error row."""

    def __init__(self, load_args: dict, fingerprint: str, device: str, threads: int, modality: str):
        self.model = load_worker_model(load_args, fingerprint, device, threads)
        self.modality = modality
        self.node, self.pid = where()
        self.resize = DeviceResize.of(self.model.preprocess_image) if modality == "image" else None

    def _pixels(self, batch: dict, good: list[int], errors: list):
        """The good rows' pixels (b, 3, S, S) on the model's device; JPEG files are decoded there."""
        import torch
        if "on_device" not in batch:
            return torch.from_numpy(batch["pixels"][good])
        size = self.model.preprocess_cfg["size"]
        size = (3, *((size, size) if isinstance(size, int) else size))
        flags = [bool(batch["on_device"][i]) for i in good]
        decoded = [np.frombuffer(batch["data"][i], np.uint8).reshape(size) for i, f in zip(good, flags) if not f]
        pixels, failed = device_pixels(
            flags, torch.from_numpy(np.stack(decoded)) if decoded else None,
            [torch.frombuffer(bytearray(batch["data"][i]), dtype=torch.uint8) for i, f in zip(good, flags) if f],
            self.resize, self.model.device, self.model.preprocess_image, self.model.max_image_pixels)
        for i, error in zip(good, failed):
            errors[i] = error or ""
        good[:] = [i for i in good if not errors[i]]
        return pixels

    def __call__(self, batch: dict) -> dict:
        items = batch["item"]
        n = len(items)
        emb = np.full((n, self.model.embed_dim), np.nan, dtype=np.float32)  # (B, D)
        if self.modality == "text":
            keys, errors, good = [text_key(t) for t in items], [""] * n, list(range(n))
            vecs = self.model.embed_texts([str(t) for t in items])
        else:
            keys, errors = list(batch["key"]), list(batch["error"])
            good = [i for i, e in enumerate(errors) if not e]
            pixels = self._pixels(batch, good, errors) if good else None
            vecs = self.model.embed_image_tensors(pixels) if good else emb[:0]
        for j, i in enumerate(good):
            if np.isfinite(vecs[j]).all():
                emb[i] = vecs[j]
            else:  # an fp16 overflow must never reach the cache
                errors[i] = NON_FINITE
        return {"item": items, "key": np.array(keys, dtype=object), "ok": np.array([not e for e in errors]),
                "error": np.array(errors, dtype=object), "embedding": emb,
                "node": np.array([self.node] * n, dtype=object), "pid": np.full(n, self.pid, dtype=np.int64)}


def evaluate_pair(load_args: dict, fingerprint: str, device: str, threads: int, dataset, templates) -> dict:
    """A Ray task: one model's zero-shot top-1/top-5 on one dataset (lab.studies.robustness.score)."""
    from ..studies.robustness import score, zero_shot_classifier
    model = load_worker_model(load_args, fingerprint, device, threads)
    top = zero_shot_classifier(model, templates)(dataset)  # (N, 5)
    node, pid = where()
    return {**score(top, dataset.labels), "node": node, "pid": pid}
