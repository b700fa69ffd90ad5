"""A distributed encoding run's output folder: parquet parts, a manifest, and what reads them.

    runs/laion/manifest.json          status, model, fingerprint, counts, engine settings
    runs/laion/part-00000.parquet     one per wave: key, item, ok, error, embedding, origin, node, pid, stat

A part is written once, through a temporary file and a rename, when every item of its wave has a
row: its existence marks the wave complete (a rerun skips it). The model fingerprint is in every
part's metadata, so an import can never file vectors under the wrong model.

    python -m lab cache import runs/laion                         # merge into the local cache (idempotent)
    python -m lab export runs/laion --format clip-retrieval       # img_emb/*.npy + metadata/*.parquet

Needs pyarrow (the `dist` extra), not Ray.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from ..errors import LabError

__all__ = ["MANIFEST", "DIST_HINT", "part_path", "parts", "atomic_write", "read_manifest", "write_manifest",
           "write_part", "part_meta", "read_part", "read_run", "import_run", "export_clip_retrieval"]

MANIFEST = "manifest.json"
DIST_HINT = "pip install 'clip-lab[dist]'"


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise LabError(f"reading and writing run folders needs pyarrow: {DIST_HINT}") from None
    return pa, pq


def part_path(folder: Path, wave: int) -> Path:
    return Path(folder) / f"part-{wave:05d}.parquet"


def parts(folder) -> list[Path]:
    """The complete parts of a run folder, in wave order."""
    return sorted(Path(folder).glob("part-*.parquet"))


def atomic_write(path: Path, write):
    """`write(tmp_path)` then rename: readers never see half a file, and concurrent writers never
    share a temporary file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def read_manifest(folder) -> dict | None:
    p = Path(folder) / MANIFEST
    return json.loads(p.read_text()) if p.is_file() else None


def write_manifest(folder, manifest: dict):
    manifest = {**manifest, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write(Path(folder) / MANIFEST, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=1)))


def write_part(path: Path, rows: list[dict], meta: dict, dim: int):
    """One wave's rows (item order) -> a parquet part with the run's identity in its metadata."""
    pa, pq = _pa()
    emb = np.full((len(rows), dim), np.nan, dtype=np.float32)  # (N, D), NaN for failed items
    for i, r in enumerate(rows):
        if r["ok"]:
            emb[i] = r["embedding"]
    table = pa.table({
        "key": pa.array([r["key"] or None for r in rows], pa.string()),
        "item": pa.array([r["item"] for r in rows], pa.string()),
        "ok": pa.array([bool(r["ok"]) for r in rows], pa.bool_()),
        "error": pa.array([r["error"] or None for r in rows], pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel(), pa.float32()), dim),
        "origin": pa.array([r["origin"] for r in rows], pa.string()),  # engine | cache | driver
        "node": pa.array([r.get("node") for r in rows], pa.string()),
        "pid": pa.array([r.get("pid") for r in rows], pa.int64()),
        "stat": pa.array([r.get("stat") for r in rows], pa.list_(pa.int64())),  # size, mtime_ns, ctime_ns
    }).replace_schema_metadata({b"lab": json.dumps(meta).encode()})
    # vectors do not compress: storing them plain makes a part twice as fast to read back
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression={c: "none" if c == "embedding" else "snappy"
                                                                           for c in table.column_names},
                                                  use_dictionary=["origin", "node", "error"]))


def part_meta(path) -> dict:
    _, pq = _pa()
    return json.loads(pq.read_schema(path).metadata[b"lab"])


def read_part(path, columns=None):
    """-> (pandas table without the embedding column, embeddings (N, D) float32)."""
    _, pq = _pa()
    table = pq.read_table(path, columns=columns)
    emb = None
    if "embedding" in table.column_names:
        col = table.column("embedding").combine_chunks()
        emb = col.values.to_numpy(zero_copy_only=False).reshape(len(table), -1).astype(np.float32, copy=False)
        table = table.drop_columns(["embedding"])
    return table.to_pandas(), emb


def _check_folder(folder) -> tuple[dict, list[Path]]:
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise LabError(f"{folder} is not a run folder (no {MANIFEST}); pass the --out folder of a "
                       "`python -m lab encode --engine ray` run")
    return manifest, parts(folder)


def read_run(folder):
    """A run's rows in input order (complete waves only) -> (table: item, key, ok, error, origin,
    node, pid; embeddings (N, D) float32, NaN rows for failures)."""
    import pandas as pd
    manifest, files = _check_folder(folder)
    tables, embs = zip(*(read_part(p) for p in files)) if files else ((), ())
    if not files:
        return pd.DataFrame(columns=["key", "item", "ok", "error", "origin", "node", "pid", "stat"]), \
            np.zeros((0, manifest["dim"]), np.float32)
    return pd.concat(tables, ignore_index=True), np.concatenate(embs)


def import_run(folder, cache=None) -> dict:
    """Merge a run's vectors (and the file hashes its workers computed) into the local cache.
    Idempotent: rows already there are left as they are. -> {"rows": ok rows read, "parts": n}."""
    from ..core.cache import EmbeddingCache
    cache = cache if isinstance(cache, EmbeddingCache) else EmbeddingCache(cache)
    manifest, files = _check_folder(folder)
    fp, modality = manifest["fingerprint"], manifest["modality"]
    cache.register_model(fp, manifest["model"], manifest["dim"])
    rows = 0
    _, pq = _pa()
    for p in files:
        meta = part_meta(p)
        if meta["fingerprint"] != fp or meta["modality"] != modality:
            raise LabError(f"{p} was written by model {meta['model']} [{meta['fingerprint'][:12]}], not the "
                           f"folder's {manifest['model']} [{fp[:12]}]; remove the part or the folder")
        table = pq.read_table(p, columns=["key", "item", "ok", "embedding", "stat"])
        table = table.filter(table.column("ok"))  # failed items are never cached
        emb = table.column("embedding").combine_chunks().values.to_numpy().reshape(len(table), -1)  # (N, D)
        keys = table.column("key").to_pylist()
        cache.put(fp, modality, keys, emb)
        stat = table.column("stat").combine_chunks()
        if modality == "image" and stat.null_count < len(stat):  # remembered hashes: a warm pass only stats
            values = stat.flatten().to_numpy().reshape(-1, 3).tolist()  # (M, 3): size, mtime_ns, ctime_ns
            with_stat = np.flatnonzero(stat.is_valid().to_numpy(zero_copy_only=False))
            items = table.column("item").to_pylist()
            cache.put_file_digests((items[i], *v, keys[i].removeprefix("file:")) for i, v in zip(with_stat, values))
        rows += len(table)
    return {"rows": rows, "parts": len(files)}


def export_clip_retrieval(folder, dest=None, partition_rows: int = 1_000_000, dtype="float16") -> Path:
    """The layout autofaiss and clip-retrieval's back end read: dest/img_emb/img_emb_{i}.npy
    (N, D) and dest/metadata/metadata_{i}.parquet (image_path, key), successful rows only, in
    partitions of up to `partition_rows`. Default dest: <folder>/clip-retrieval."""
    pa, pq = _pa()
    manifest, files = _check_folder(folder)
    if manifest.get("status") != "complete":
        raise LabError(f"{folder} is an unfinished run ({manifest.get('status')}); rerun the same command to "
                       "finish it, then export")
    dest = Path(dest) if dest else Path(folder) / "clip-retrieval"
    kind = "img" if manifest["modality"] == "image" else "text"
    col = "image_path" if kind == "img" else "caption"
    (dest / f"{kind}_emb").mkdir(parents=True, exist_ok=True)
    (dest / "metadata").mkdir(parents=True, exist_ok=True)
    buf_items, buf_keys, buf_emb, n_part = [], [], [], 0

    def flush():
        nonlocal buf_items, buf_keys, buf_emb, n_part
        if not buf_items:
            return
        emb = np.concatenate(buf_emb).astype(dtype)
        def save(tmp):
            with open(tmp, "wb") as fh:
                np.save(fh, emb)
        atomic_write(dest / f"{kind}_emb" / f"{kind}_emb_{n_part}.npy", save)
        table = pa.table({col: buf_items, "key": buf_keys})
        atomic_write(dest / "metadata" / f"metadata_{n_part}.parquet", lambda tmp: pq.write_table(table, tmp))
        buf_items, buf_keys, buf_emb, n_part = [], [], [], n_part + 1

    for p in files:
        table, emb = read_part(p, columns=["key", "item", "ok", "embedding"])
        ok = table["ok"].to_numpy()
        items, keys, emb = table["item"][ok].tolist(), table["key"][ok].tolist(), emb[ok]
        while items:
            room = partition_rows - sum(map(len, buf_emb))
            buf_items += items[:room]
            buf_keys += keys[:room]
            buf_emb.append(emb[:room])
            items, keys, emb = items[room:], keys[room:], emb[room:]
            if sum(map(len, buf_emb)) >= partition_rows:
                flush()
    flush()
    return dest
