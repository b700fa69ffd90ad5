"""Scale out on Ray: encode image folders, path lists and webdataset tar shards (or texts) across many
workers and GPUs, resumable, into the same cache; and run models x datasets evaluation grids.

    from lab import dist
    with dist.connect("auto"):          # attach to a running cluster; None starts one on this machine
        dist.encode_images("ViT-B/32", ["shards/{00000..00640}.tar"], "runs/laion", workers=8, gpus_per_worker=1)
    table, emb = lab.dist.runs.read_run("runs/laion")             # input order; NaN rows for failures

    python -m lab encode shards/{00000..00640}.tar --model ViT-B/32 --engine ray --address auto \\
        --workers 8 --gpus-per-worker 1 --out runs/laion

The driver expands the sources into items (an image file, or a member of a tar shard:
"<shard>::<member>"), cuts them into deterministic waves, skips the waves already written and the
items already in the local SQLite cache, and streams the rest through Ray Data: read_binary_files /
read_webdataset keep the raw bytes; an actor pool (ActorPoolStrategy, one model per worker) hashes
them (the cache key is the sha256 of the file's bytes, so a tar member and the same file on disk
share one entry), decodes with the lab's own code and encodes. The driver writes each wave as a
parquet part when its last row arrives (`lab.dist.runs`), then imports the parts into the cache.
Workers never open SQLite (single host; WAL does not work on network file systems). Needs the
`dist` extra: pip install 'clip-lab[dist]'.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path

import numpy as np

from ..core.encoding import DECODES, path_problem, text_key
from ..core.images import file_key
from ..errors import LabError
from . import runs
from .sources import expand_sources

__all__ = ["WAVE_SIZE", "connect", "encode_images", "encode_texts", "run_grid"]

WAVE_SIZE = 1024


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise LabError(f"the Ray engine needs Ray: {runs.DIST_HINT}") from None
    return ray


@contextlib.contextmanager
def connect(address: str | None = None, **init_kwargs):
    """Connect this process to a Ray cluster for the duration of the block. address=None starts a
    local cluster (stopped at the end); "auto" or "ray://host:10001" attaches to a running one (at the
    end this process only disconnects: a cluster the lab did not start is never shut down). When
    Ray is connected already, the block uses that connection and leaves it as it was."""
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    if address is None:
        init_kwargs.setdefault("include_dashboard", False)
    init_kwargs.setdefault("log_to_driver", False)
    ray.init(address=address, **init_kwargs)
    try:
        yield ray
    finally:
        ray.shutdown()  # local: stops the cluster it started; attached: disconnects this driver only


def _data_context():
    from ray.data import DataContext
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.wait_for_min_actors_s = 600  # every worker holds its model before the first batch: work spreads evenly
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    return ctx


def _waves(sizes: list[int], wave_size: int) -> list[list[int]]:
    """Consecutive units packed into waves of about `wave_size` items (a shard is never split)."""
    waves, current, count = [], [], 0
    for u, size in enumerate(sizes):
        current.append(u)
        count += size
        if count >= wave_size:
            waves.append(current)
            current, count = [], 0
    return waves + ([current] if current else [])


# -- the run ------------------------------------------------------------------------------------

class _Job:
    """One encoding run: items, their waves, what the driver knows about each before dispatch."""

    def __init__(self, model, modality: str, items: list[str], waves: list[list[int]], out: Path, wave_size: int):
        self.model, self.modality, self.items, self.waves, self.out = model, modality, items, waves, out
        self.wave_size = wave_size
        self.index = {item: i for i, item in enumerate(items)}
        self.wave_of = np.empty(len(items), dtype=np.int64)
        for w, members in enumerate(waves):
            self.wave_of[members] = w
        self.keys: dict[int, str] = {}      # item index -> content key, when known before dispatch
        self.stats: dict[int, list] = {}    # item index -> [size, mtime_ns, ctime_ns] of the file read
        self.problems: dict[int, str] = {}  # item index -> why it is an error row without dispatch
        self.decode = "auto"  # images: where JPEG files are decoded (lab.core.encoding.DECODES)
        self.meta = {"model": model.name, "fingerprint": model.fingerprint, "modality": modality,
                     "dim": model.embed_dim}

    def identity(self) -> dict:
        digest = hashlib.sha256("\n".join(self.items).encode()).hexdigest()
        return {**self.meta, "n_items": len(self.items), "n_waves": len(self.waves), "wave_size": self.wave_size,
                "inputs_digest": digest}

    def row(self, i: int, **fields) -> dict:
        return {"item": self.items[i], "key": self.keys.get(i), "stat": self.stats.get(i), "embedding": None,
                "node": None, "pid": None, **fields}


def _check_out(job: _Job, resume: bool) -> dict:
    """The run folder's manifest: a new one, or the one of the same run to resume. Refuses a folder
    that holds another model's or other inputs' run."""
    out, ident = job.out, job.identity()
    old = runs.read_manifest(out)
    if old is not None and not resume:
        for p in runs.parts(out):
            p.unlink()
        old = None
    if old is not None:
        for field, what in (("fingerprint", "model"), ("modality", "modality"), ("inputs_digest", "inputs"),
                            ("wave_size", "wave size")):
            if old.get(field) != ident[field]:
                raise LabError(
                    f"{out} holds a run of {old.get('model')} [{str(old.get('fingerprint'))[:12]}] over "
                    f"{old.get('n_items')} {old.get('modality')} items; this one differs in its {what}. Pass another "
                    "output folder, or resume=False (--no-resume) to start this folder over")
        return {**old, "status": "running"}
    elif out.exists() and any(out.iterdir()):
        raise LabError(f"{out} is not empty and holds no run (no {runs.MANIFEST}); pass a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    return {**ident, "status": "running", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _resolve_images(job: _Job, units):
    """Stat every file (missing ones become error rows, as in-process), and learn the content keys
    the cache remembers for unchanged files and shards."""
    stats, i = {}, 0
    for path, members in units:
        if members is None:
            st, problem = path_problem(path)
            if problem:
                job.problems[i] = problem
            else:
                job.stats[i] = stats[path] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns]
            i += 1
        else:
            st = os.stat(path)
            for m in members:
                job.stats[i] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns]
                stats[job.items[i]] = job.stats[i]  # memo key of a member: "<shard>::<member>"
                i += 1
    for path, digest in job.model.cache.file_digests({k: tuple(v) for k, v in stats.items()}).items():
        job.keys[job.index[path]] = file_key(digest)


def encode_images(model, sources, out, *, workers: int = 1, gpus_per_worker: float = 0, cpus_per_worker: float = 1,
                  batch_size: int | None = None, resume: bool = True, wave_size: int = WAVE_SIZE,
                  resources: dict | None = None, address: str | None = None, cache_import: bool = True,
                  progress: bool = True, on_wave=None, decode: str = "auto") -> dict:
    """Encode image folders, .txt path lists, files, .tar shards and brace/glob patterns of them on a
    Ray cluster into the run folder `out`. Returns the manifest (status, counts, `last_run`).

    model: a ClipModel or a name for load_model. workers: encoder actors (one model each), each with
    gpus_per_worker GPUs, cpus_per_worker CPUs (its torch threads) and `resources` (custom Ray
    resources, e.g. to pin encoders to some nodes). resume: skip waves already written (False starts
    the folder over). cache_import: merge the results into the local cache at the end.
    on_wave(wave, path): called after each part is written. decode: where JPEG files are decoded, as
    in ClipModel.encode_images: "gpu" in the encoders (on their device), "cpu" in the decode tasks,
    "auto" gpu when the encoders have GPUs.
    """
    if decode not in DECODES:
        raise LabError(f"decode={decode!r} is not one of {list(DECODES)}")
    model = _model(model, gpus_per_worker)
    units = expand_sources(sources)
    items = [path if members is None else f"{path}::{m}" for path, members in units for m in (members or [None])]
    waves = _waves([1 if members is None else len(members) for _, members in units], wave_size)
    starts = np.cumsum([0] + [1 if m is None else len(m) for _, m in units])
    waves = [[i for u in wave for i in range(starts[u], starts[u + 1])] for wave in waves]  # units -> items
    job = _Job(model, "image", items, waves, Path(out), wave_size)
    job.decode = decode
    _resolve_images(job, units)
    return _execute(job, workers, gpus_per_worker, cpus_per_worker, batch_size, resume, resources, address,
                    cache_import, progress, on_wave)


def encode_texts(model, texts, out, *, workers: int = 1, gpus_per_worker: float = 0, cpus_per_worker: float = 1,
                 batch_size: int | None = None, resume: bool = True, wave_size: int = WAVE_SIZE,
                 resources: dict | None = None, address: str | None = None, cache_import: bool = True,
                 progress: bool = True, on_wave=None) -> dict:
    """Texts (each distinct string once) on a Ray cluster into the run folder `out`; as encode_images."""
    model = _model(model, gpus_per_worker)
    items = list(dict.fromkeys(texts))
    bad = [t for t in items if not isinstance(t, str)]
    if bad:
        raise LabError(f"texts must be strings; got {type(bad[0]).__name__} {bad[0]!r:.60}")
    waves = [list(range(s, min(s + wave_size, len(items)))) for s in range(0, len(items), wave_size)]
    job = _Job(model, "text", items, waves, Path(out), wave_size)
    job.keys = {i: text_key(t) for i, t in enumerate(items)}
    return _execute(job, workers, gpus_per_worker, cpus_per_worker, batch_size, resume, resources, address,
                    cache_import, progress, on_wave)


def _model(model, gpus: float):
    """A ClipModel as the workers will load it: with CPU workers a name is loaded on the CPU (a GPU
    driver would otherwise pick fp16, which CPU workers cannot compute)."""
    from ..core.models import load_model
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model, device=None if gpus else "cpu")
    if not gpus and model.precision == "fp16":
        raise LabError(f"{model.name} was loaded with precision='fp16' (the default on a GPU), which CPU workers "
                       "cannot compute: load it with device='cpu' (python -m lab encode: --device cpu), or give the "
                       "workers GPUs (gpus_per_worker / --gpus-per-worker)")
    if not hasattr(model, "load_args"):
        raise LabError("workers load the model the way the driver did: pass a name or a model from lab.load_model")
    return model


def _execute(job: _Job, workers, gpus_per_worker, cpus_per_worker, batch_size, resume, resources, address,
             cache_import, progress, on_wave) -> dict:
    from tqdm.auto import tqdm
    t0 = time.perf_counter()
    manifest = _check_out(job, resume)
    engine = {"workers": workers, "gpus_per_worker": gpus_per_worker, "cpus_per_worker": cpus_per_worker,
              "batch_size": batch_size or (256 if gpus_per_worker else 32), "resources": resources or {},
              "address": address}
    manifest["engine"] = engine
    runs.write_manifest(job.out, manifest)
    done = {w for w in range(len(job.waves)) if runs.part_path(job.out, w).exists()}
    pending = [w for w in range(len(job.waves)) if w not in done]
    rows: dict[int, dict] = {}
    todo = [i for w in pending for i in job.waves[w] if i not in job.problems]
    known = [job.keys[i] for i in todo if i in job.keys]
    hits = job.model.cache.get(job.model.fingerprint, job.modality, known) if known else {}
    dispatch = []
    for w in pending:
        for i in job.waves[w]:
            if i in job.problems:
                rows[i] = job.row(i, ok=False, error=job.problems[i], origin="driver")
            elif job.keys.get(i) in hits:
                rows[i] = job.row(i, ok=True, error=None, embedding=hits[job.keys[i]], origin="cache")
            else:
                dispatch.append(i)
    remaining = {w: sum(i not in rows for i in job.waves[w]) for w in pending}
    last = {"dispatched": len(dispatch), "encoded": 0, "from_cache": sum(r["origin"] == "cache" for r in rows.values()),
            "waves_skipped": len(done), "waves_written": 0, "startup_s": None}

    def finish(w):
        part = runs.part_path(job.out, w)
        runs.write_part(part, [rows.pop(i) for i in job.waves[w]], job.meta, job.model.embed_dim)
        last["waves_written"] += 1
        if on_wave is not None:
            on_wave(w, part)

    for w in pending:
        if remaining[w] == 0:
            finish(w)
    if dispatch:
        bar = tqdm(total=len(dispatch), desc=f"encode {job.modality}s on ray ({job.model.name})", unit=job.modality[:3],
                   disable=not progress)
        with connect(address), bar:
            for batch in _stream(job, dispatch, engine, resources):
                if last["startup_s"] is None:
                    last["startup_s"] = round(time.perf_counter() - t0, 3)
                for k in range(len(batch["item"])):
                    i = job.index.get(str(batch["item"][k]))
                    if i is None or i in rows or job.wave_of[i] not in remaining:
                        continue  # not ours (cannot happen) or a duplicate row (an actor retried a batch)
                    ok = bool(batch["ok"][k])
                    job.keys[i] = str(batch["key"][k])
                    rows[i] = job.row(i, ok=ok, error=None if ok else str(batch["error"][k]),
                                      embedding=batch["embedding"][k], origin="engine", node=str(batch["node"][k]),
                                      pid=int(batch["pid"][k]))
                    last["encoded"] += ok
                    w = int(job.wave_of[i])
                    remaining[w] -= 1
                    if remaining[w] == 0:
                        finish(w)
                bar.update(len(batch["item"]))
    lost = [job.items[i] for w in pending if remaining[w] > 0 for i in job.waves[w] if i not in rows]
    if lost:  # their waves stay incomplete: a rerun dispatches them again
        raise LabError(f"the engine returned no row for {len(lost)} item(s) ({', '.join(lost[:3])}"
                       f"{' ...' if len(lost) > 3 else ''}); {last['waves_written']} waves were written to "
                       f"{job.out}; rerun the same command to finish")
    ok = np.concatenate([runs.read_part(p, columns=["ok"])[0]["ok"].to_numpy() for p in runs.parts(job.out)])
    manifest.update(status="complete", counts={"items": len(ok), "ok": int(ok.sum()), "failed": int((~ok).sum())},
                    last_run={**last, "seconds": round(time.perf_counter() - t0, 3)})
    runs.write_manifest(job.out, manifest)
    if cache_import:
        runs.import_run(job.out, job.model.cache)
    return manifest


def _stream(job: _Job, dispatch: list[int], engine: dict, resources):
    """Ray Data: raw bytes (or texts) of the dispatched items -> encoder actor pool -> batches of
    rows {item, key, ok, error, embedding, node, pid} streamed back to the driver."""
    ray = _ray()
    from ray.data import ActorPoolStrategy
    from .worker import Encoder, decode_batch, rows_from_files, rows_from_shards
    _data_context()
    batch_size, workers = engine["batch_size"], engine["workers"]
    blocks = lambda n: max(1, -(-n // (batch_size * 8)))  # noqa: E731  read tasks of ~8 batches each
    io = {"num_cpus": 0}  # reads never wait for the CPUs the encoders hold (ray#44687)
    parts = []
    if job.modality == "text":
        parts.append(ray.data.from_items([{"item": job.items[i]} for i in dispatch],
                                         override_num_blocks=blocks(len(dispatch))))
    else:
        files = [job.items[i] for i in dispatch if "::" not in job.items[i]]
        members = [job.items[i] for i in dispatch if "::" in job.items[i]]
        if files:
            parts.append(ray.data.read_binary_files(files, include_paths=True, **io,
                                                    override_num_blocks=blocks(len(files)))
                         .map_batches(rows_from_files, batch_format="numpy", **io))
        if members:
            shards = sorted({m.split("::")[0] for m in members})
            wanted = set(members)
            skip = frozenset(job.items[i] for w in {int(job.wave_of[job.index[m]]) for m in members}
                             for i in job.waves[w] if "::" in job.items[i] and job.items[i] not in wanted)
            parts.append(ray.data.read_webdataset(shards, decoder=None, **io)
                         .map_batches(rows_from_shards, fn_kwargs={"skip": skip}, batch_format="pandas", **io))
    ds = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    if job.modality == "image":  # decode tasks of ~8 batches on any CPU, streaming into the encoders
        ds = ds.repartition(target_num_rows_per_block=8 * batch_size).map_batches(
            decode_batch, batch_format="numpy", num_cpus=1,
            fn_kwargs=dict(preprocess_cfg=job.model.preprocess_cfg, max_pixels=job.model.max_image_pixels,
                           device_jpegs=_device_jpegs(job, engine["gpus_per_worker"])))
    # one block per batch, all of a task's blocks at once: idle workers share them (the pool hands a
    # trickle of single blocks to the same least-busy worker)
    ds = ds.repartition(target_num_rows_per_block=batch_size)
    gpus, cpus = engine["gpus_per_worker"], engine["cpus_per_worker"]
    have = ray.cluster_resources()
    short = [f"{workers * v:g} {k} (the cluster has {have.get(k, 0):g})"
             for k, v in {"GPU": gpus, **(resources or {})}.items() if workers * v > have.get(k, 0)]
    if short:  # else the pool would wait for workers that never start
        raise LabError(f"{workers} workers need {', '.join(short)}; lower --workers or add nodes that have them")
    free = have.get("CPU", 0) - 1  # one logical CPU stays free for the streaming steps
    if cpus and workers * cpus > free:
        cpus = max(free, 0) / workers  # the request only: each worker still runs int(cpus_per_worker) threads
    ds = ds.map_batches(
        Encoder, batch_size=batch_size, batch_format="numpy",
        compute=ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=2),
        num_cpus=cpus, num_gpus=gpus, **({"resources": resources} if resources else {}),
        fn_constructor_kwargs=dict(load_args=job.model.load_args, fingerprint=job.model.fingerprint,
                                   device="cuda" if gpus else "cpu", threads=max(1, int(engine["cpus_per_worker"])),
                                   modality=job.modality))
    yield from ds.iter_batches(batch_size=None, batch_format="numpy")


# -- models x datasets --------------------------------------------------------------------------

def _device_jpegs(job: _Job, gpus: float) -> bool:
    """Whether the encoders decode JPEG files on their device (job.decode, resolved)."""
    if job.decode == "cpu" or (job.decode == "auto" and not gpus):
        return False
    from ..core.device_decode import DeviceResize
    from .worker import _per_image
    if DeviceResize.of(_per_image(job.model.preprocess_cfg)) is not None:
        return True
    if job.decode == "gpu":
        raise LabError(f"decode='gpu': {job.model.name}'s preprocessing (resize_mode="
                       f"{job.model.preprocess_cfg.get('resize_mode')!r}) has no tensor equivalent; use 'auto' or 'cpu'")
    return False


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:60] + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]


def run_grid(models, datasets: dict, out, templates=("a photo of a {}.",), *, gpus_per_worker: float = 0,
             cpus_per_worker: float = 1, resources: dict | None = None, address: str | None = None,
             progress: bool = True):
    """Zero-shot evaluation of every model on every dataset, one Ray task per pair (each loads its
    model and encodes without the SQLite cache). Each result is written atomically to
    out/<model>__<dataset>.json as it arrives; a rerun skips the pairs whose file matches the model's
    fingerprint, the dataset's size and the templates. -> DataFrame: model, dataset, n, top1, top5,
    top1_low, top1_high, fingerprint, node, pid, computed (True when this call ran the pair)."""
    import pandas as pd
    from tqdm.auto import tqdm
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    templates = list(templates) if not isinstance(templates, str) else templates
    loaded = [_model(m, gpus_per_worker) for m in models]
    results, pending = {}, []
    for m in loaded:
        for name, ds in datasets.items():
            path = out / f"{_slug(m.name)}__{_slug(name)}.json"
            want = {"model": m.name, "fingerprint": m.fingerprint, "dataset": name, "n_items": len(ds),
                    "templates": templates}
            old = json.loads(path.read_text()) if path.is_file() else {}
            if all(old.get(k) == v for k, v in want.items()):
                results[path] = {**old, "computed": False}
            else:
                pending.append((path, want, m, ds))
    if pending:
        with connect(address) as ray:
            from .worker import evaluate_pair
            task = ray.remote(evaluate_pair).options(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker,
                                                     **({"resources": resources} if resources else {}))
            device = "cuda" if gpus_per_worker else "cpu"
            threads = max(1, int(cpus_per_worker))
            refs = {task.remote(m.load_args, m.fingerprint, device, threads, ds, templates): (path, want)
                    for path, want, m, ds in pending}
            with tqdm(total=len(refs), desc="models x datasets on ray", disable=not progress) as bar:
                while refs:
                    ready, _ = ray.wait(list(refs), num_returns=1)
                    path, want = refs.pop(ready[0])
                    result = {**want, **ray.get(ready[0])}
                    runs.atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1)))
                    results[path] = {**result, "computed": True}
                    bar.update()
    order = [out / f"{_slug(m.name)}__{_slug(name)}.json" for m in loaded for name in datasets]
    cols = ["model", "dataset", "n", "top1", "top5", "top1_low", "top1_high", "fingerprint", "node", "pid", "computed"]
    return pd.DataFrame([results[p] for p in order])[cols]
