"""The prepared cache's manifest: what `workshop prepare` built cache.zip with, and whether this
machine will read it (`python -m lab workshop check --cache cache.zip`).

Embeddings are keyed by the model's fingerprint (weights, preprocessing and precision: a CUDA machine
computes in fp16, a CPU in fp32), memoized results also by the lab's code and the versions of the
packages they name (lab.core.memo). The manifest (MANIFEST, at the root of the zip) records those;
`check_cache` compares them with this machine's and says how many entries it will read.
"""
from __future__ import annotations

import ast
import json
import os
import sqlite3
import subprocess
import sys
import zipfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from ..errors import LabError

__all__ = ["MANIFEST", "memo_inputs", "manifest", "read_manifest", "check_cache"]

MANIFEST = "clip-lab-cache.json"  # at the root of cache.zip, so also in the folder it is unpacked into


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def memo_inputs() -> tuple[list[str], list[str]]:
    """(lab modules, packages) named in any memo key in the lab's sources (`code=` and `packages=` of
    lab.core.memo and its wrappers, literal or defaults): what decides whether a memoized result is read."""
    root = Path(__file__).resolve().parents[1]
    modules, packages = set(), set()
    for file in sorted(root.rglob("*.py")):
        name = ("lab." + ".".join(file.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        pairs = []
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg in ("code", "packages"):
                pairs.append((node.arg, node.value))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                pairs += [(x.arg, d) for x, d in zip(a.args[len(a.args) - len(a.defaults):], a.defaults)]
                pairs += [(x.arg, d) for x, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
        for arg, value in pairs:
            if arg not in ("code", "packages"):
                continue
            for item in value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]:
                text = (item.value if isinstance(item, ast.Constant) and isinstance(item.value, str)
                        else name if isinstance(item, ast.Name) and item.id == "__name__" else None)
                if text:
                    (modules if arg == "code" else packages).add(text)
    return sorted(modules), sorted(packages)


def _code_versions(modules) -> dict:
    from ..core.memo import code_version
    out = {}
    for m in modules:
        try:
            out[m] = code_version(m)
        except ImportError:  # ModuleNotFoundError: a module this lab no longer has
            out[m] = None
    return out


def _commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _connect_ro(db: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.Error:  # a WAL database in a read-only folder
        return sqlite3.connect(f"file:{db}?immutable=1", uri=True)


def _models_in(folder: Path) -> list[dict]:
    """Per model fingerprint in a cache folder's database: name, precision and entries per modality."""
    from ..core.cache import DB_NAME
    db = folder / DB_NAME
    if not db.exists():
        return []
    conn = _connect_ro(db)
    try:
        names = dict(conn.execute("SELECT fingerprint, name FROM models").fetchall())
        precision = {fp: json.loads(identity).get("precision")
                     for fp, identity in conn.execute("SELECT fingerprint, identity FROM model_identities")}
        models = {}
        for fp, modality, n in conn.execute(
                "SELECT fingerprint, modality, count(*) FROM embeddings GROUP BY fingerprint, modality"):
            entry = models.setdefault(fp, {"name": names.get(fp, "?"), "fingerprint": fp,
                                           "precision": precision.get(fp), "embeddings": {}})
            entry["embeddings"][modality] = n
    finally:
        conn.close()
    return sorted(models.values(), key=lambda m: (m["name"], m["fingerprint"]))


def _memoized_in(folder: Path) -> dict:
    from ..core.memo import FOLDERS
    counts = {name: sum(1 for p in (folder / name).rglob("*") if p.is_file() and not p.name.startswith("."))
              for name in FOLDERS if (folder / name).is_dir()}
    return {k: v for k, v in counts.items() if v}


def _this_machine() -> dict:
    """The device and precision the modules compute with here (load_model's defaults)."""
    from ..core.models import device_name
    device = device_name()
    return {"device": device, "precision": "fp16" if device.startswith("cuda") else "fp32"}


def manifest(folder: str | os.PathLike, modules=None) -> dict:
    """What a prepared cache folder's entries are keyed by: the versions of the packages and the lab code
    named in memo keys, the fingerprints (and precision) of the models its embeddings were computed with,
    the device, and how many entries of each."""
    folder = Path(folder)
    code, packages = memo_inputs()
    return {"format": 1, "built": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lab": _version("clip-lab"), "commit": _commit(), "python": sys.version.split()[0],
            "platform": sys.platform, "modules": list(modules or []), **_this_machine(),
            "packages": {d: _version(d) for d in packages}, "code": _code_versions(code),
            "other_packages": {d: _version(d) for d in ("torch", "open_clip_torch", "numpy", "plotly")},
            "models": _models_in(folder), "memoized": _memoized_in(folder)}


def read_manifest(target: str | os.PathLike) -> dict | None:
    """The manifest of cache.zip or of the cache folder it was unpacked into (None: it has none)."""
    target = Path(target)
    try:
        if target.is_dir():
            file = target / MANIFEST
            return json.loads(file.read_text()) if file.exists() else None
        with zipfile.ZipFile(target) as z:
            return json.loads(z.read(MANIFEST)) if MANIFEST in z.namelist() else None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise LabError(f"{target} cannot be read as a prepared cache ({e}): copy it again") from e


def _local_fingerprint(name: str) -> str | None:
    import lab
    try:
        return lab.load_model(name).fingerprint  # this machine's default device and precision, as the modules
    except Exception:  # a model this lab does not have: reported as a miss
        return None


def _at(man: dict) -> str:
    return f"lab {man.get('lab')}" + (f" at commit {man['commit'][:10]}" if man.get("commit") else "")


def check_cache(target: str | os.PathLike | None = None, info: list | None = None) -> list[str]:
    """Will this machine read the prepared cache `target` (cache.zip, or the folder it was unpacked into;
    default: this machine's cache folder, when it holds a manifest)? Returns the problems (what will miss,
    why, the fixes); the verdict with its counts goes to `info`."""
    from ..core.cache import default_cache_dir
    mine_folder = default_cache_dir()
    label = str(target) if target is not None else f"the cache folder {mine_folder}"
    target = Path(target).expanduser() if target is not None else mine_folder
    if not target.exists():
        if target == mine_folder:
            return []  # nothing handed out here (the cache check reports a folder it cannot write)
        return [f"{label} does not exist: copy cache.zip from the instructor (USB stick or the workshop page)"]
    man = read_manifest(target)
    if man is None:
        if target == mine_folder:
            return []  # nothing handed out here: nothing to check
        return [f"{label} has no {MANIFEST} (not made by this lab's workshop prepare): the instructor reruns "
                "python -m lab workshop prepare --out cache.zip"]
    models = _models_in(target) if target.is_dir() else man["models"]
    memoized = _memoized_in(target) if target.is_dir() else man["memoized"]
    n_emb = sum(sum(m["embeddings"].values()) for m in models)
    n_memo = sum(memoized.values())
    me = _this_machine()
    if info is not None:
        precisions = ", ".join(sorted({str(m.get("precision")) for m in man["models"]})) or man.get("precision")
        info.append(f"{label}: prepared {man['built']} on {man['device']} ({precisions}) with {_at(man)}: "
                    f"{n_emb} embeddings of {len(models)} model(s), {n_memo} memoized results")
    reasons, fixes, hit_emb = [], [], 0
    for m in models:
        fp = _local_fingerprint(m["name"])
        if fp == m["fingerprint"]:
            hit_emb += sum(m["embeddings"].values())
        elif fp is None:
            reasons.append(f"this lab has no model {m['name']}")
            fixes.append(f"install {_at(man)}")
        elif m.get("precision") and m["precision"] != me["precision"]:
            reasons.append(f"{m['name']}'s embeddings were computed in {m['precision']} on "
                           f"{'a GPU' if m['precision'] != 'fp32' else 'a CPU'}, this machine computes in "
                           f"{me['precision']} on {me['device']} (another fingerprint)")
            fixes.append("start Jupyter with CUDA_VISIBLE_DEVICES= so the modules compute on the CPU in fp32 as the "
                         "cache was" if me["device"].startswith("cuda") else
                         "ask for a cache prepared on a CPU (CUDA_VISIBLE_DEVICES= python -m lab workshop prepare)")
        else:
            reasons.append(f"{m['name']}'s weights or preprocessing differ (fingerprint {m['fingerprint'][:12]} "
                           f"there, {fp[:12]} here)")
            fixes.append(f"install {_at(man)}")
    differ = {d: (v, _version(d)) for d, v in man.get("packages", {}).items() if v != _version(d)}
    if differ:
        reasons.append("package versions differ: " + ", ".join(f"{d} {v} there, {here or 'none'} here"
                                                               for d, (v, here) in sorted(differ.items())))
        fixes.append("pip install " + " ".join(f"'{d}=={v}'" for d, (v, _) in sorted(differ.items()) if v))
    here = _code_versions(man.get("code", {}))
    changed = sorted(m for m, v in man.get("code", {}).items() if here.get(m) != v)
    if changed:
        reasons.append(f"the lab's code differs in {', '.join(changed)}")
        fixes.append(f"install {_at(man)}")
    hit_memo = n_memo if not reasons else 0  # memo keys hold the versions, the code and the embeddings' inputs
    if info is not None:
        info.append(f"{label}: this machine {'will read all of it' if not reasons else 'will miss'}: {hit_emb} of "
                    f"{n_emb} embeddings and {hit_memo} of {n_memo} memoized results")
    problems = []
    if reasons:
        problems.append(f"{label} will be read only in part here ({hit_emb} of {n_emb} embeddings, {hit_memo} of "
                        f"{n_memo} memoized results; the rest is computed afresh) because {'; '.join(reasons)}: "
                        f"{'; or '.join(dict.fromkeys(fixes))}; or prepare the cache on a machine like this one "
                        "(python -m lab workshop prepare --out cache.zip)")
    if target.is_file():
        try:
            unpacked = read_manifest(mine_folder) == man
        except LabError:
            unpacked = False
        if not unpacked:
            problems.append(f"{label} is not unpacked into this machine's cache folder: with Jupyter stopped, "
                            f"unzip -o {label} -d {mine_folder}")
    return problems
