"""Persistent, content-addressed embedding cache in SQLite (WAL mode).

A row is keyed by (model fingerprint, modality, content key): the fingerprint changes with the
weights, architecture and preprocessing, the content key is a hash of an image file's bytes, of
decoded pixels, of a dataset item's stable key, or of the exact text. Each encoded batch is one
transaction, so a killed process loses at most the batch in flight, and concurrent writers
(two papermill runs) serialize on SQLite's lock instead of corrupting anything.

The same database remembers (path, size, mtime, ctime) -> content hash, so a warm pass over many
files only stats them. ctime cannot be set by copies that preserve times (cp -p, rsync -a, tar),
so a rewritten file is hashed again. It also remembers each model file's identity (configs,
embedding size, fingerprint) under its path and content hash, so a cached run need not build the model.

    python -m lab cache info      # entries and bytes per model
    python -m lab cache clear     # prune (optionally --model FINGERPRINT_OR_NAME)
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
import urllib.parse
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

__all__ = ["DB_NAME", "default_cache_dir", "sha256_file", "stat_key", "EmbeddingCache"]

DB_NAME = "embeddings.sqlite3"
_CHUNK = 4000 if sqlite3.sqlite_version_info >= (3, 32) else 900  # variables per query: 32766 (older: 999)
_INHERITED: list = []  # connections a forked child inherited: kept alive, never used or closed there

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    fingerprint TEXT NOT NULL, modality TEXT NOT NULL, key TEXT NOT NULL, vector BLOB NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS embeddings_key ON embeddings (fingerprint, modality, key);
CREATE TABLE IF NOT EXISTS models (
    fingerprint TEXT PRIMARY KEY, name TEXT NOT NULL, dim INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS file_hashes (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
    digest TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS model_identities (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, identity TEXT NOT NULL);
"""


def default_cache_dir() -> Path:
    """$LAB_CACHE_DIR, else the per-user cache directory (~/.cache/clip-lab on Linux)."""
    if os.environ.get("LAB_CACHE_DIR"):
        return Path(os.environ["LAB_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "clip-lab"


def sha256_file(path: str, bufsize: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


def _chunks(seq: Sequence, n: int = _CHUNK):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def stat_key(st: os.stat_result) -> tuple[int, int, int]:
    """What must be unchanged for a remembered file hash to hold."""
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


class EmbeddingCache:
    """One SQLite database; safe to share between threads (one lock per cache object) and
    between processes (SQLite's locking)."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory).expanduser() if directory else default_cache_dir()
        self.path = self.directory / DB_NAME
        self._conn: sqlite3.Connection | None = None
        self._pid = None
        self._lock = threading.RLock()
        self.read_only: str | bool = False  # why, when the folder cannot be written (a shared cache on a hub)
        self._told = False

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid != os.getpid():
            _INHERITED.append(self._conn)  # closing the parent's handle in a child can corrupt the file
            self._conn = None
        if self._conn is None:
            try:
                conn = self._open() if self._writable() else self._open_read_only("read-only files")
            except (sqlite3.OperationalError, OSError) as e:  # a read-only folder or database after all
                conn = self._open_read_only(e)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _writable(self) -> bool:
        folder = next((p for p in (self.directory, *self.directory.parents) if p.exists()), None)
        if self.path.exists():
            return os.access(self.path, os.W_OK) and os.access(self.directory, os.W_OK)
        return folder is not None and os.access(folder, os.W_OK)

    def _open(self) -> sqlite3.Connection:
        self.directory.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=120, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA page_size=16384")  # vectors are 2-4 KB: big pages halve read time (new files only)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: committed data survives a killed process
            conn.executescript(_SCHEMA)
        except sqlite3.OperationalError:
            conn.close()
            raise
        return conn

    def _open_read_only(self, why: Exception) -> sqlite3.Connection:
        """The database as it is, never written (immutable: no locks, no WAL files to create); an empty
        one in memory when there is none. Results are read from it; new ones are computed, not stored
        (a shared cache on a hub). The first embeddings that cannot be stored say so, once."""
        self.read_only = f"the embedding cache {self.directory} cannot be written ({why})"
        if self.path.is_file():  # a WAL left beside it (a copy of a cache in use) is read; else no locks at all
            wal = self.path.with_name(self.path.name + "-wal")
            mode = "mode=ro" if wal.is_file() and wal.stat().st_size else "mode=ro&immutable=1"
            uri = f"file:{urllib.parse.quote(str(self.path.resolve()))}?{mode}"
            return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.executescript(_SCHEMA)
        return conn

    def _write(self, sql: str, rows: Iterable[tuple]):
        with self._lock:
            conn = self.conn
            if self.read_only:
                if sql.startswith("INSERT OR IGNORE INTO embeddings") and not self._told:
                    self._told = True
                    warnings.warn(f"{self.read_only}: new embeddings are computed and not stored; point "
                                  "LAB_CACHE_DIR at a writable copy to keep them", stacklevel=5)
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(sql, rows)
                conn.execute("COMMIT")
            except sqlite3.OperationalError as e:
                conn.execute("ROLLBACK")
                if "readonly" not in str(e):
                    raise
                self._conn = self._open_read_only(e)  # the files said writable; the file system did not
                self._write(sql, [])
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _read(self, sql: str, args) -> list:
        with self._lock:
            return self.conn.execute(sql, args).fetchall()

    # -- embeddings ---------------------------------------------------------------------------
    def get(self, fingerprint: str, modality: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among `keys`, as {key: float32 vector}."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for chunk in _chunks(unique):
            marks = ",".join("?" * len(chunk))
            rows = self._read(
                f"SELECT key, vector FROM embeddings WHERE fingerprint=? AND modality=? AND key IN ({marks})",
                (fingerprint, modality, *chunk))
            for key, blob in rows:
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, fingerprint: str, modality: str, keys: Sequence[str], vectors: np.ndarray):
        """Store one batch in one transaction (existing keys are left as they are)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._write("INSERT OR IGNORE INTO embeddings VALUES (?,?,?,?)",
                    ((fingerprint, modality, k, v.tobytes()) for k, v in zip(keys, vectors)))

    def register_model(self, fingerprint: str, name: str, dim: int):
        self._write("INSERT OR IGNORE INTO models VALUES (?,?,?,?)", [(fingerprint, name, dim, time.time())])

    def model_identity(self, key: str) -> dict | None:
        """A model's remembered identity (configs, sizes, fingerprint) under its load request's key."""
        rows = self._read("SELECT identity FROM model_identities WHERE key=?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def put_model_identity(self, key: str, fingerprint: str, identity: dict):
        self._write("INSERT OR REPLACE INTO model_identities VALUES (?,?,?)",
                    [(key, fingerprint, json.dumps(identity, default=list))])

    # -- file content hashes ------------------------------------------------------------------
    def file_digests(self, stats: dict[str, tuple[int, int, int]]) -> dict[str, str]:
        """{path: digest} for the paths whose remembered `stat_key` still matches."""
        out: dict[str, str] = {}
        for chunk in _chunks(list(stats)):
            marks = ",".join("?" * len(chunk))
            for path, size, mtime, ctime, digest in self._read(
                    f"SELECT path, size, mtime_ns, ctime_ns, digest FROM file_hashes WHERE path IN ({marks})", chunk):
                if stats[path] == (size, mtime, ctime):
                    out[path] = digest
        return out

    def put_file_digests(self, rows: Iterable[tuple[str, int, int, int, str]]):
        """Remember (path, size, mtime_ns, ctime_ns, digest) rows."""
        rows = list(rows)
        if rows:
            self._write("INSERT OR REPLACE INTO file_hashes VALUES (?,?,?,?,?)", rows)

    def file_digest(self, path: str) -> str:
        """sha256 of a file's bytes, memoized by its stat: a re-load of a 1.7 GB checkpoint
        only stats it."""
        path = os.path.abspath(path)
        stat = stat_key(os.stat(path))
        known = self.file_digests({path: stat})
        if path in known:
            return known[path]
        digest = sha256_file(path)
        self.put_file_digests([(path, *stat, digest)])
        return digest

    # -- maintenance --------------------------------------------------------------------------
    def info(self) -> list[dict]:
        """Entries and bytes per (model, modality)."""
        rows = self._read(
            "SELECT e.fingerprint, COALESCE(m.name, '?'), e.modality, COUNT(*), SUM(LENGTH(e.vector)) "
            "FROM embeddings e LEFT JOIN models m ON m.fingerprint = e.fingerprint "
            "GROUP BY e.fingerprint, e.modality ORDER BY 2, 3", ())
        return [dict(fingerprint=f, model=n, modality=mod, entries=c, bytes=b) for f, n, mod, c, b in rows]

    def clear(self, model: str | None = None) -> int:
        """Delete the embeddings of one model (its name, or a fingerprint prefix), or all.
        Returns the number of rows deleted."""
        if model is not None and not model.strip():
            raise ValueError("clear(model=...) needs a model name or fingerprint prefix; clear() empties all")
        with self._lock:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                if model is None:
                    n = conn.execute("DELETE FROM embeddings").rowcount
                    conn.execute("DELETE FROM models")
                    conn.execute("DELETE FROM file_hashes")
                    conn.execute("DELETE FROM model_identities")
                else:
                    fps = [r[0] for r in conn.execute(
                        "SELECT fingerprint FROM models WHERE name=? OR substr(fingerprint, 1, ?)=?",
                        (model, len(model), model))]
                    n = 0
                    for fp in fps:
                        n += conn.execute("DELETE FROM embeddings WHERE fingerprint=?", (fp,)).rowcount
                        conn.execute("DELETE FROM models WHERE fingerprint=?", (fp,))
                        conn.execute("DELETE FROM model_identities WHERE fingerprint=?", (fp,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if model is None:
                conn.execute("VACUUM")
        return n

    def close(self):
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None
