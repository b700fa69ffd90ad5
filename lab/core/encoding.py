"""Batch encoding through the cache: the engine behind ClipModel.encode_images / encode_texts.

Images: content keys are resolved cheaply first (dataset keys, remembered file hashes), cache
hits are filled in, and only the misses go through a DataLoader whose workers read, hash,
decode and preprocess in parallel with the forward pass — or, with decode="gpu" (the default on
CUDA), read and hash JPEG files whose bytes are then decoded and resized in batches on the GPU
(lab.core.device_decode). Each batch's forward pass is queued before the previous one is read
back, and its cache write runs on a background thread. A bad item is skipped and reported (its
row stays NaN) unless strict=True.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from functools import partial

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .cache import stat_key
from ..errors import BadInput, WorkerTimeout, error_text  # error_text: re-exported here too
from ..processes import loader_options
from ..threads import available_cpus
from .images import as_rgb_image, decode_bytes, describe, file_key, pixel_key
from .tokens import tokenize

__all__ = ["Failure", "text_key", "error_text", "NON_FINITE", "path_problem", "DECODES", "default_workers",
           "encode_images", "encode_texts"]


@dataclass(frozen=True)
class Failure:
    """An input item that could not be encoded."""
    index: int
    item: str
    reason: str

    def __str__(self):
        return f"[{self.index}] {self.item}: {self.reason}"


DECODES = ("auto", "cpu", "gpu")  # where JPEG files are decoded; auto: gpu on a CUDA model, else cpu
_USER = 5  # warning stacklevel of the user's call: _run <- encode_* <- ClipModel.encode_* <- user


def _run(model, n: int, what: str, fill, return_failures: bool):
    """Allocate the (n, D) NaN output, let `fill(out, failures)` compute into it, report failures."""
    out = np.full((n, model.embed_dim), np.nan, dtype=np.float32)
    failures: list[Failure] = []
    if n == 0:
        warnings.warn(f"got no {what}; returning an empty (0, D) array", stacklevel=_USER - 1)
    else:
        fill(out, failures)
    failures.sort(key=lambda f: f.index)
    if failures:
        shown = "; ".join(map(str, failures[:5])) + (" ..." if len(failures) > 5 else "")
        warnings.warn(f"{len(failures)} of {n} {what} could not be encoded and were skipped (their rows are NaN): "
                      f"{shown}. Pass return_failures=True to get the list, strict=True to stop at the first.",
                      stacklevel=_USER - 1)
    return (out, failures) if return_failures else out


def _fail(failures: list, strict: bool, index: int, item, reason: str, what: str):
    failure = Failure(index, describe(item), reason)
    if strict:
        raise BadInput(f"{what} {failure}")
    failures.append(failure)


def _dataset_key(key: str) -> str:
    return "ds:" + hashlib.sha256(key.encode()).hexdigest()


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Pending:
    """The items to compute (a map-style dataset); __getitem__ runs in DataLoader workers."""

    def __init__(self, entries, preprocess, max_pixels, device_jpegs: bool = False):
        self.entries, self.preprocess, self.max_pixels = entries, preprocess, max_pixels
        self.device_jpegs = device_jpegs  # JPEG files travel as bytes, to be decoded on the model's device

    def __len__(self):
        return len(self.entries)

    def __getitem__(self, j):
        index, item, key = self.entries[j]
        out = {"index": index, "key": key, "tensor": None, "blob": None, "error": None, "stat": None}
        try:
            if isinstance(item, tuple):  # (dataset, i)
                item = item[0].source(item[1])
            if isinstance(item, (str, os.PathLike)):
                path = os.path.abspath(item)
                st = os.stat(path)
                with open(path, "rb") as f:
                    data = f.read()
                digest = hashlib.sha256(data).hexdigest()
                out["stat"] = (path, *stat_key(st), digest)
                out["key"] = out["key"] or file_key(digest)
                if self.device_jpegs and _device_jpeg(data, self.max_pixels):
                    out["blob"] = data
                    return out
                img = decode_bytes(data, self.max_pixels)
            else:  # in-memory images arrive keyed: _resolve_image_keys hashed their pixels
                img = as_rgb_image(item, self.max_pixels)
            out["tensor"] = self.preprocess(img)
        except Exception as e:  # reported per item, never fatal to the run
            out["error"] = error_text(e)
        return out


def _device_jpeg(data: bytes, max_pixels: int) -> bool:
    from .device_decode import device_jpeg  # imports torchvision: only where JPEGs go to the device
    return device_jpeg(data, max_pixels)


NON_FINITE = "the model produced a non-finite embedding (fp16 overflow? try precision='fp32')"


def path_problem(path: str) -> tuple[os.stat_result | None, str | None]:
    """(stat, None) for an image file path, else (None, why it cannot be one)."""
    try:
        st = os.stat(path)
    except OSError:
        return None, "file not found; check the path"
    if not os.path.isfile(path):
        return None, "is a folder, not an image file; use lab.data.list_images(folder)"
    return st, None


def _item_at(images, i):
    """What to call item i in a message: its path, its dataset key, or the item itself."""
    if hasattr(images, "source"):
        return images.content_key(i) or images.source(i)
    return images[i]


class _Collate:
    """Runs in the worker: stack the decoded items' pixels (B, 3, H, W) uint8 and join the JPEG files
    left for the device into one byte tensor (one shared-memory transfer, not one per image); with a
    tower (CPU runs), also run the forward pass there, so each core encodes its own batches end to end."""

    def __init__(self, tower=None):
        self.tower = tower

    def __call__(self, records):
        import torch
        good = [r for r in records if r["error"] is None]
        decoded = [r.pop("tensor") for r in good if r["blob"] is None]
        blobs = [r["blob"] for r in good if r["blob"] is not None]
        for r in records:
            r.pop("tensor", None)
            r["on_device"] = r.pop("blob") is not None
        pixels = torch.stack(decoded) if decoded else None
        jpegs = (torch.frombuffer(bytearray(b"".join(blobs)), dtype=torch.uint8), [len(b) for b in blobs]) \
            if blobs else None
        vectors = self.tower(pixels) if self.tower is not None and pixels is not None else None
        return {"records": records, "pixels": None if vectors is not None else pixels, "jpegs": jpegs,
                "vectors": vectors}


def _items(images):
    """(index, item, dataset key or None): a dataset item with a stable key is rendered or read
    only if its embedding is missing; other items are the paths / images themselves."""
    if not (hasattr(images, "source") and hasattr(images, "content_key")):
        return [(i, item, None) for i, item in enumerate(images)]
    out = []
    for i in range(len(images)):
        k = images.content_key(i)
        out.append((i, (images, i), _dataset_key(k)) if k is not None else (i, images.source(i), None))
    return out


def _resolve_image_keys(model, images, failures, strict):
    """-> list of (index, item, key or None) still to look at. Paths get their key from the
    remembered stat -> hash when possible (else the worker hashes them); in-memory images are
    converted and hashed here; missing files are failures right away."""
    entries, stats = [], {}
    for i, item, key in _items(images):
        if key is not None:
            entries.append((i, item, key))
        elif isinstance(item, (str, os.PathLike)):
            path = os.path.abspath(item)
            st, problem = path_problem(path)
            if problem:
                _fail(failures, strict, i, item, problem, "image")
                continue
            stats[path] = stat_key(st)
            entries.append((i, path, None))
        elif isinstance(item, (Image.Image, np.ndarray)):
            try:
                img = as_rgb_image(item, model.max_image_pixels)
            except (ValueError, TypeError) as e:
                _fail(failures, strict, i, item, str(e), "image")
                continue
            entries.append((i, img, pixel_key(img)))
        else:
            _fail(failures, strict, i, item, f"is a {type(item).__name__}; pass a path, a PIL image or a numpy array", "image")
    if stats:
        digests = model.cache.file_digests(stats)
        entries = [(i, it, file_key(digests[it]) if isinstance(it, str) and it in digests else k)
                   for i, it, k in entries]
    return entries


def default_workers(device: str) -> int:
    """DataLoader workers when the caller does not say: on a GPU every core the process may use but
    one (the main process feeds the GPU); on the CPU at most 4, each encoding its own batches."""
    cpus = available_cpus()
    return min(4, cpus) if device.split(":")[0] == "cpu" else max(1, cpus - 1)


def _device_resize(model, decode: str):
    """The tensor resize for decoding JPEGs on the model's device, or None to decode with PIL."""
    if decode == "cpu" or (decode == "auto" and not model.device_name.startswith("cuda")):
        return None
    from .device_decode import DeviceResize
    resize = DeviceResize.of(model.preprocess_image)
    if resize is None and decode == "gpu":
        raise BadInput(f"decode='gpu': {model.name}'s preprocessing (resize_mode="
                       f"{model.preprocess_cfg.get('resize_mode')!r}) has no tensor equivalent; use decode='auto' or 'cpu'")
    return resize


def encode_images(model, images, batch_size=None, cache=True, strict=False, progress=True,
                  num_workers=None, return_failures=False, decode="auto"):
    if decode not in DECODES:
        raise BadInput(f"decode={decode!r} is not one of {list(DECODES)}")
    if isinstance(images, (str, os.PathLike, Image.Image)) or (isinstance(images, np.ndarray) and images.ndim in (2, 3)):
        images = [images]  # one image, not a sequence of them
    fill = partial(_encode_images, model, images, batch_size=batch_size, cache=cache, strict=strict,
                   progress=progress, num_workers=num_workers, decode=decode)
    return _run(model, len(images), "images", fill, return_failures)


def _encode_images(model, images, out, failures, *, batch_size, cache, strict, progress, num_workers, decode):
    entries = _resolve_image_keys(model, images, failures, strict)
    if cache:
        hits = model.cache.get(model.fingerprint, "image", [k for _, _, k in entries if k])
        for i, _, k in entries:
            if k in hits:
                out[i] = hits[k]
        entries = [e for e in entries if e[2] not in hits]
    batch_size = batch_size or model.default_batch_size
    if entries:
        import torch
        resize = _device_resize(model, decode)
        if num_workers is None:
            num_workers = 0 if len(entries) <= batch_size else default_workers(model.device_name)
        # On CPU the workers run the forward pass too (one thread each): data parallel over cores
        # beats decoding beside a multi-threaded forward when both compete for the same cores.
        in_workers = num_workers > 0 and model.device_name.split(":")[0] == "cpu" and resize is None
        loader = torch.utils.data.DataLoader(
            _Pending(entries, model.preprocess_image, model.max_image_pixels, device_jpegs=resize is not None),
            batch_size=batch_size, num_workers=num_workers,
            collate_fn=_Collate(model.image_tower if in_workers else None),
            pin_memory=model.device_name.startswith("cuda"), prefetch_factor=4 if num_workers else None,
            **loader_options(num_workers))
        bar = tqdm(total=len(entries), desc=f"encode images ({model.name})", unit="img", disable=not progress)
        with bar, _CacheWriter(model.cache if cache else None) as writer:
            _run_loader(model, images, loader, resize, bar, out, failures, writer, strict)


def _batches(loader, images):
    """The loader's batches; a batch that misses the workers' deadline raises WorkerTimeout naming it."""
    it, k, entries = iter(loader), 0, loader.dataset.entries
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except RuntimeError as e:
            if "timed out" not in str(e):
                raise
            del it  # stops the workers (terminated if they do not answer)
            chunk = entries[k * loader.batch_size:(k + 1) * loader.batch_size]
            raise WorkerTimeout(
                f"encode images: batch {k + 1} of {len(loader)} (items {chunk[0][0]}..{chunk[-1][0]}, first "
                f"{describe(_item_at(images, chunk[0][0]))}) did not come back from the DataLoader workers within "
                f"{loader.timeout:g} s; they were stopped. The {k} batches before it are encoded (and cached when "
                "cache=True): run again to continue from there. A worker that is only slow (a large model on a busy "
                "CPU) needs more time: LAB_WORKER_TIMEOUT=seconds (0: no limit), or num_workers=0 to encode in this "
                "process.") from None
        yield batch
        k += 1


class _CacheWriter:
    """Cache writes on a background thread, so the GPU's next batch never waits for SQLite. At most
    `depth` writes wait; leaving the `with` block waits for all of them (nothing computed is lost,
    also when the run stops with an error) and raises the first write that failed."""

    def __init__(self, cache, depth: int = 8):
        self.cache, self.depth, self.pending = cache, depth, []
        self.pool = None
        if cache is not None:
            from concurrent.futures import ThreadPoolExecutor
            self.pool = ThreadPoolExecutor(1, thread_name_prefix="lab-cache-writer")

    def put(self, fingerprint, keys, vectors, stats):
        if self.pool is None:
            return
        if len(self.pending) >= self.depth:
            self.pending.pop(0).result()
        self.pending.append(self.pool.submit(self._write, fingerprint, keys, vectors, stats))

    def _write(self, fingerprint, keys, vectors, stats):
        if keys:
            self.cache.put(fingerprint, "image", keys, vectors)
        self.cache.put_file_digests(stats)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            for f in self.pending:
                f.result()


def _batch_pixels(model, batch, good, resize):
    """The good records' pixels (b, 3, S, S) uint8, in record order: PIL-decoded ones as they came,
    JPEG files decoded on the device. Records the device path could not decode get their error."""
    if batch["jpegs"] is None:
        return batch["pixels"]
    import torch
    from .device_decode import device_pixels
    blob, sizes = batch["jpegs"]
    pixels, errors = device_pixels([r["on_device"] for r in good], batch["pixels"], list(torch.split(blob, sizes)),
                                   resize, model.device, model.preprocess_image, model.max_image_pixels)
    for r, error in zip(good, errors):
        r["error"] = error
    return pixels


def _run_loader(model, images, loader, resize, bar, out, failures, writer, strict):
    """Each batch's forward pass is queued before the previous batch is read back and stored, so on
    a GPU reading, decoding, computing and cache writes overlap. When the run stops (a worker
    timeout, an interrupt), the batch in flight is still stored."""
    in_flight: list = []  # batches queued and not yet stored: at most two
    try:
        _loop(model, images, loader, resize, bar, out, failures, writer, strict, in_flight)
    except BaseException:
        for batch in in_flight:  # stored without reporting its bad items: the stop's own error goes on
            _store(model, images, batch, out, [], writer, False, bar)
        raise


def _loop(model, images, loader, resize, bar, out, failures, writer, strict, in_flight: list):
    for batch in _batches(loader, images):
        records = batch["records"]
        good = [r for r in records if r["error"] is None]
        vectors = batch["vectors"]
        pixels = _batch_pixels(model, batch, good, resize) if vectors is None and good else None
        bad = [(r, r["error"]) for r in records if r["error"] is not None]
        good = [r for r in good if r["error"] is None]
        if writer.cache is not None and good:  # keys first learned in the worker may be cached already
            late = writer.cache.get(model.fingerprint, "image", [r["key"] for r in good])
            if late:
                for r in good:
                    if r["key"] in late:
                        out[r["index"]] = late[r["key"]]
                keep = [j for j, r in enumerate(good) if r["key"] not in late]
                good = [good[j] for j in keep]
                pixels, vectors = (None if t is None else t[keep] for t in (pixels, vectors))
        result = None
        if good:
            result = vectors if vectors is not None else model.image_tower.launch(pixels)
        in_flight.append((records, good, result, bad))
        if len(in_flight) == 2:
            _store(model, images, in_flight.pop(0), out, failures, writer, strict, bar)
    if in_flight:
        _store(model, images, in_flight.pop(), out, failures, writer, strict, bar)


def _store(model, images, in_flight, out, failures, writer, strict, bar):
    """Read a batch's result back, keep the finite rows, queue their cache write, report the bad."""
    records, good, result, bad = in_flight
    keys, vecs = [], None
    if good:
        vecs = result if isinstance(result, np.ndarray) else result.numpy()
        finite = np.isfinite(vecs).all(1)  # an fp16 overflow must never reach the cache
        bad = bad + [(r, NON_FINITE) for r, ok in zip(good, finite) if not ok]
        good, vecs = [r for r, ok in zip(good, finite) if ok], vecs[finite]
        out[[r["index"] for r in good]] = vecs
        keys = [r["key"] for r in good]
    writer.put(model.fingerprint, keys, vecs, [r["stat"] for r in records if r["stat"]])
    bar.update(len(records))
    for r, reason in bad:  # after the good part of the batch is queued for the cache: strict loses nothing
        _fail(failures, strict, r["index"], _item_at(images, r["index"]), reason, "image")


def encode_texts(model, texts, batch_size=None, cache=True, strict=False, progress=True, return_failures=False):
    texts = [texts] if isinstance(texts, str) else texts
    fill = partial(_encode_texts, model, texts, batch_size=batch_size, cache=cache, strict=strict, progress=progress)
    return _run(model, len(texts), "texts", fill, return_failures)


def _encode_texts(model, texts, out, failures, *, batch_size, cache, strict, progress):
    n = len(texts)
    todo: dict[str, list[int]] = {}  # key -> positions (duplicates computed once)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            _fail(failures, strict, i, repr(t)[:60], f"is a {type(t).__name__}, not a string", "text")
            continue
        todo.setdefault(text_key(t), []).append(i)
    if cache and todo:
        for k, v in model.cache.get(model.fingerprint, "text", list(todo)).items():
            out[todo.pop(k)] = v
    keys = list(todo)
    batch_size = batch_size or (1024 if model.device_name.startswith("cuda") else 256)
    truncated = 0

    def store(chunk, result):
        vecs = result.numpy()
        for k, v in zip(chunk, vecs):
            out[todo[k]] = v
        if cache:
            model.cache.put(model.fingerprint, "text", chunk, vecs)
        bar.update(len(chunk))

    with tqdm(total=len(keys), desc=f"encode texts ({model.name})", unit="text",
              disable=not progress or len(keys) <= batch_size) as bar:
        in_flight = None  # the GPU computes one chunk while the next is tokenized
        for s in range(0, len(keys), batch_size):
            chunk = keys[s:s + batch_size]
            tokens, cut = tokenize(model.tokenizer, [texts[todo[k][0]] for k in chunk], model.context_length)
            truncated += cut
            result = model.launch_texts(tokens)
            if in_flight is not None:
                store(*in_flight)
            in_flight = (chunk, result)
        if in_flight is not None:
            store(*in_flight)
    if truncated:
        warnings.warn(f"{truncated} of {n} texts are longer than the model's context of {model.context_length} "
                      "tokens and were truncated", stacklevel=_USER)
