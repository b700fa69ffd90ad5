"""Memoized results in the lab's cache folder: a re-run with unchanged inputs reads a file.

    value = memoized("knn", [x, labels, {"k": 10}], compute, cache=True, folder="projections",
                     code=["lab.studies.maps"], packages=["scikit-learn"])

The key is a digest of the parts (arrays by shape, dtype and bytes; images by their pixels;
JSON-able values as they are), the sha256 of the source of the modules named in `code` and the versions of
`packages`: new code or a new library computes afresh. Results are JSON (`kind="json"`) or a dict
of arrays (`kind="npz"`), written through a temporary file and a rename, so readers never see half
a file and concurrent writers never share one. A cache that cannot be written (read-only, full)
or holds an unreadable file costs the re-computation, nothing else. cache: True for the lab cache
folder ($LAB_CACHE_DIR), a folder, or False (no caching).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import threading
import warnings
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np

from .cache import default_cache_dir

__all__ = ["array_digest", "code_version", "key", "FOLDERS", "folder", "clear", "atomic_save", "memoized"]


def array_digest(a: np.ndarray) -> str:
    """Identity of an array: sha256 of its shape, dtype and bytes (strings and objects by their text)."""
    a = np.asarray(a)
    if a.dtype.kind in "biufc":
        a = np.ascontiguousarray(a)
        h = hashlib.sha256(f"{a.shape}:{a.dtype}".encode())
        h.update(a.data)
    else:
        h = hashlib.sha256(f"{a.dtype.kind}{a.shape}:{chr(0).join(map(str, a.ravel()))}".encode())
    return h.hexdigest()


def _keyable(value):
    """A JSON-able stand-in for a key part; TypeError for what has no stable identity (a callable)."""
    from PIL import Image
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return "array:" + array_digest(value)
    if isinstance(value, Image.Image):
        from .images import pixel_key, to_rgb
        return pixel_key(to_rgb(value))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [_keyable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _keyable(v) for k, v in value.items()}
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        return "array:" + array_digest(value.detach().cpu().numpy())
    raise TypeError(f"no stable key for a {type(value).__name__}")


@functools.cache
def code_version(*modules: str) -> str:
    """sha256 of the named modules' source text ("lab.studies.attribution", usually a module's own
    __name__). Modules are found by the import system, not by a path, so the version follows a
    moved module and stays the same while its text does."""
    h = hashlib.sha256()
    for m in modules:
        spec = importlib.util.find_spec(m)
        if spec is None or not spec.origin:
            raise ModuleNotFoundError(f"memo: no module {m!r} to version (name it in full, e.g. 'lab.studies.maps')")
        h.update(Path(spec.origin).read_bytes())
    return h.hexdigest()[:16]


def key(name: str, parts, code=(), packages=()) -> str:
    """Digest of a result's name, inputs and parameters, lab code and library versions; TypeError
    when a part has no stable identity."""
    versions = [metadata.version(p) for p in packages]
    return hashlib.sha256(json.dumps([name, _keyable(parts), code_version(*code), versions],
                                     sort_keys=True).encode()).hexdigest()[:32]


FOLDERS = ("results", "attribution", "robustness", "projections", "figures")  # where memoized results live


def folder(cache, name: str) -> Path | None:
    """<cache dir>/<name> for cache=True or a folder; None for cache=False. `name` is one of FOLDERS
    (so `clear` knows every folder results are kept in)."""
    if name not in FOLDERS:
        raise ValueError(f"memoized results live in one of {FOLDERS}, not {name!r}; add it to lab.core.memo.FOLDERS")
    if cache is False or cache is None:
        return None
    return Path(default_cache_dir() if cache is True else cache) / name


def clear(directory=None) -> tuple[int, int]:
    """Delete every memoized result under a cache folder (the lab's by default) -> (files, bytes)."""
    files = size = 0
    for name in FOLDERS:
        for path in (Path(directory or default_cache_dir()) / name).glob("**/*"):
            if path.is_file():
                files, size = files + 1, size + path.stat().st_size
                path.unlink(missing_ok=True)
    return files, size


def atomic_save(file: Path, array: np.ndarray = None, text: str | None = None, data: bytes | None = None,
                **arrays):
    """np.save / np.savez (or `text`, or raw `data`) through a temporary file and a rename: readers never see
    half a file, and concurrent writers (processes or threads) never share a temporary file."""
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.stem}.{os.getpid()}.{threading.get_ident()}.tmp{file.suffix}")
    try:
        with open(tmp, "wb") as fh:
            if data is not None:
                fh.write(data)
            elif text is not None:
                fh.write(text.encode())
            elif array is not None:
                np.save(fh, array)
            else:
                np.savez(fh, **arrays)
        os.replace(tmp, file)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read(file: Path, kind: str):
    if kind == "json":
        return json.loads(file.read_text())
    with np.load(file, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def memoized(name: str, parts, compute, cache=True, *, folder_name: str = "results", code=(), packages=(),
             kind: str = "json"):
    """compute() -> result (JSON-able, or a dict of arrays for kind='npz'), kept in
    <cache>/<folder_name>/<name>-<key>.<kind> and read back while parts, code and packages are unchanged."""
    where = folder(cache, folder_name)
    if where is None:
        return compute()
    try:
        file = where / f"{name}-{key(name, parts, code, packages)}.{kind}"
    except TypeError:  # e.g. a callable parameter: no stable key, no caching
        return compute()
    if file.exists():
        try:
            return _read(file, kind)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            warnings.warn(f"unreadable cache file {file} ({e}); computing afresh")
    value = compute()
    try:
        if kind == "json":
            atomic_save(file, text=json.dumps(value))
        else:
            atomic_save(file, **value)
    except OSError as e:  # a read-only or full cache costs the re-computation next time, nothing else
        warnings.warn(f"could not cache {name} in {where}: {e}")
    return value
