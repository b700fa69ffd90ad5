"""Offline rooms: check a learner's machine, and pre-compute everything the modules use.

    python -m lab workshop check                    # one line per problem, each with its fix (<= 30 s)
    python -m lab workshop check --cache cache.zip  # will this machine read the hand-out? how many entries?
    python -m lab workshop check --hub              # on a JupyterHub: the server's environment too
    python -m lab workshop prepare --out cache.zip  # every embedding and map the modules compute

`prepare` runs the solution edition of every module against an empty cache folder and zips that
folder with a manifest (MANIFEST: the versions, lab code and model fingerprints its entries are keyed
by); learners unzip it into their cache folder (`$LAB_CACHE_DIR` or ~/.cache/clip-lab) and the first
run of each module reads instead of computing. Embeddings are keyed by the model's fingerprint (weights,
preprocessing and precision: a CUDA machine computes in fp16, a CPU in fp32), memoized results also by
the lab's code and the versions of the packages they name (lab.core.memo): `check --cache` compares
those with this machine's and says how many entries it will read.

On a JupyterHub the page's extensions (widgets, anywidget, plotly) come from the environment the
Jupyter server runs in, which may not be the kernel's: `check --hub` finds the server's Python (the
running server's process, `jupyter` on PATH, or the one named) and checks it.
"""
from __future__ import annotations

import ast
import importlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from ..errors import LabError

__all__ = ["PACKAGES", "MODELS", "MAX_ZIP_MB", "MANIFEST", "SERVER_EXTENSIONS", "check_machine", "check_cache",
           "check_server", "memo_inputs", "manifest", "read_manifest", "server_python", "prepare", "timed_check"]

PACKAGES = {"torch": "torch", "open_clip": "open_clip_torch", "numpy": "numpy", "pandas": "pandas",
            "plotly": "plotly", "ipywidgets": "ipywidgets", "captum": "captum", "sklearn": "scikit-learn",
            "nbclient": "nbclient", "ipykernel": "ipykernel", "jupyterlab": "jupyterlab"}
MODELS = ("lab-vit-tiny", "lab-rn-tiny")
MAX_ZIP_MB = 60
MANIFEST = "clip-lab-cache.json"  # at the root of cache.zip, so also in the folder it is unpacked into
# JupyterLab extensions the page needs -> the distribution that ships it (installed where the server runs)
SERVER_EXTENSIONS = {"@jupyter-widgets/jupyterlab-manager": "jupyterlab_widgets", "anywidget": "anywidget",
                     "jupyterlab-plotly": "plotly"}


def _packages() -> list[str]:
    problems = []
    for module, dist in PACKAGES.items():
        try:
            importlib.import_module(module)
        except Exception as e:  # ImportError, or a broken install raising anything
            problems.append(f"package {dist} cannot be imported ({type(e).__name__}: {e}): pip install {dist}")
    return problems


def _models() -> list[str]:
    import numpy as np
    import lab
    from lab.data.shapeworld import WorldDataset
    images = [WorldDataset("test", n=4).source(i) for i in range(4)]
    problems = []
    for name in MODELS:
        try:
            model = lab.load_model(name)
            emb = model.encode_images(images, cache=False, progress=False, strict=True)  # (4, D) through the model
            if emb.shape[0] != 4 or not np.isfinite(emb).all():
                problems.append(f"model {name} encodes images to NaN: reinstall the lab (pip install -e .), "
                                "its checkpoint file may be damaged")
        except Exception as e:
            problems.append(f"model {name} does not load or encode ({type(e).__name__}: {str(e)[:200]}): "
                            "reinstall the lab (pip install -e .) so lab/checkpoints/ is complete")
    return problems


def _cache() -> list[str]:
    from ..core.cache import default_cache_dir
    folder = default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as e:
        return [f"cache folder {folder} is not writable ({e.strerror}): set LAB_CACHE_DIR to a writable folder"]
    return []


def _kernel() -> list[str]:
    from jupyter_client.kernelspec import KernelSpecManager
    from ..report import KERNEL
    specs = KernelSpecManager().get_all_specs()
    if KERNEL in specs:
        return []
    here = os.path.realpath(sys.executable)
    for spec in specs.values():
        argv = spec.get("spec", {}).get("argv", [])
        if argv and os.path.realpath(argv[0]) == here:
            return []
    return [f"no Jupyter kernel runs this Python ({sys.executable}): python -m ipykernel install --user "
            f"--name {KERNEL} --display-name 'CLIP Lab (Python 3)'"]


def _widgets_front_end() -> list[str]:
    from jupyter_core.paths import jupyter_path
    problems = []
    for ext, dist in SERVER_EXTENSIONS.items():
        if not any((Path(p) / "labextensions" / ext).is_dir() for p in jupyter_path()):
            problems.append(f"JupyterLab extension {ext} is missing (widgets/figures would not show): "
                            f"pip install {dist}, then restart JupyterLab")
    return problems


# -- the Jupyter server's environment (JupyterHub) -------------------------------------------------

_SERVER_PROGRAMS = ("jupyterhub-singleuser", "jupyter-lab", "jupyter-server", "jupyter-notebook", "jupyter-labhub")
_SERVER_MODULES = re.compile(r"-m\s+(jupyterlab|jupyter_server|notebook|jupyterhub\.singleuser)\b")

# Runs in the server's Python (stdlib, plus jupyter_core / jupyter_client when they are there): what a page
# served from that environment gets.
_PROBE = r"""
import json, os, sys
from importlib import metadata
def version(dist):
    try:
        return metadata.version(dist)
    except Exception:
        return None
try:
    from jupyter_core.paths import jupyter_path
    dirs = jupyter_path("labextensions")
except Exception:
    dirs = [os.path.join(p, "share", "jupyter", "labextensions") for p in (sys.prefix, "/usr/local", "/usr")]
extensions = {}
for name in json.loads(sys.argv[1]):
    found = [d for d in dirs if os.path.isdir(os.path.join(d, name))]
    if found:
        extensions[name] = os.path.join(found[0], name)
try:
    from jupyter_client.kernelspec import KernelSpecManager
    kernels = {k: s["spec"].get("argv", [])[:1] for k, s in KernelSpecManager().get_all_specs().items()}
except Exception:
    kernels = None
print(json.dumps({"executable": sys.executable, "prefix": sys.prefix, "extensions": extensions, "kernels": kernels,
                  "versions": {d: version(d) for d in json.loads(sys.argv[2])}}))
"""
_PIP_LAUNCHER = re.compile(r"^'''exec' (\S+)")  # pip's console script for long paths: #!/bin/sh, then this


def _shebang_python(script: str) -> str | None:
    """The interpreter a console script (`jupyter`, `jupyter-lab`, ...) runs under."""
    try:
        with open(script, "rb") as fh:
            head = fh.read(1024).decode(errors="replace").splitlines()[:3]
    except OSError:
        return None
    if not head or not head[0].startswith("#!"):
        return None
    for line in head[1:]:
        m = _PIP_LAUNCHER.match(line)
        if m:
            return m.group(1)
    words = head[0][2:].split()
    if words and os.path.basename(words[0]) == "env" and len(words) > 1:
        return shutil.which(words[-1])
    return words[0] if words else None


def _python_of(argv: list[str]) -> str | None:
    if not argv:
        return None
    first = argv[0] if os.path.isabs(argv[0]) else (shutil.which(argv[0]) or argv[0])
    if os.path.basename(first).startswith("python"):
        return first  # as invoked, not resolved: a venv's python is a link to the base interpreter
    return _shebang_python(first)


def _running_server() -> tuple[str, str] | None:
    """(Python, how found) of the Jupyter server this process runs under: its ancestors in /proc (Linux)."""
    pid = os.getppid()
    for _ in range(16):
        if pid <= 1:
            return None
        try:
            argv = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return None
        text = " ".join(argv[:4])
        if any(p in text for p in _SERVER_PROGRAMS) or _SERVER_MODULES.search(text) or re.search(
                r"jupyter(\.exe)?\s+(lab|server|notebook)\b", text):
            python = _python_of(argv)
            if python:
                return python, f"the running Jupyter server (pid {pid})"
        pid = parent
    return None


def server_python(hub: str | os.PathLike | None = None) -> tuple[str, str]:
    """(Python of the Jupyter server's environment, how it was found). hub: None or 'auto' to find it (the
    running server this process is a child of, then jupyterhub-singleuser / jupyter-lab / jupyter on
    PATH, then this Python); else a Python, an environment prefix or a `jupyter` script of that environment."""
    if hub not in (None, "auto"):
        path = Path(hub).expanduser()
        if path.is_dir():
            for candidate in ("bin/python3", "bin/python", "python.exe", "Scripts/python.exe"):
                if (path / candidate).exists():
                    return str(path / candidate), f"the environment {path}"
            raise LabError(f"--hub {hub}: no bin/python in that folder; name the server's Python, its environment "
                           "prefix or its jupyter script")
        found = str(path) if path.exists() else shutil.which(str(hub))
        python = _python_of([found]) if found else None
        if not python:
            raise LabError(f"--hub {hub}: not a Python, an environment prefix or a jupyter script")
        return python, f"given by --hub {hub}"
    running = _running_server()
    if running:
        return running
    for program in ("jupyterhub-singleuser", "jupyter-lab", "jupyter"):
        script = shutil.which(program)
        python = script and _shebang_python(script)
        if python:
            return python, f"`{program}` on PATH ({script})"
    return sys.executable, "no Jupyter server found: this Python"


def _probe(python: str) -> dict:
    dists = sorted({*SERVER_EXTENSIONS.values(), "jupyterlab", "notebook", "jupyter_server"})
    out = subprocess.run([python, "-c", _PROBE, json.dumps(list(SERVER_EXTENSIONS)), json.dumps(dists)],
                         capture_output=True, text=True, timeout=20)
    if out.returncode != 0:
        raise LabError(f"{python} did not run ({' '.join(out.stderr.strip().splitlines()[-1:]) or out.returncode})")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _release(version: str | None, parts: int = 2) -> tuple:
    return tuple(version.split(".")[:parts]) if version else ()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_server(hub: str | os.PathLike | None = "auto", info: list | None = None) -> list[str]:
    """The Jupyter server's environment as a page served from it sees it: JupyterLab, the extensions the
    figures and widgets need (at the kernel's versions) and a kernel running this Python. One line per
    problem, each with the command that fixes it (run by whoever manages the server: the hub's admin)."""
    try:
        python, how = server_python(hub)
        seen = _probe(python)
    except (LabError, OSError, subprocess.SubprocessError, ValueError) as e:
        return [f"the Jupyter server's environment cannot be checked ({e}): name the server's Python, e.g. "
                "python -m lab workshop check --hub /opt/tljh/user/bin/python"]
    if info is not None:
        info.append(f"Jupyter server's environment: {seen['prefix']} ({how})")
    pip = f"{python} -m pip install"
    where = f"the Jupyter server's environment ({seen['prefix']})"
    problems, versions = [], seen["versions"]
    if not versions.get("jupyterlab") and _release(versions.get("notebook"), 1) < ("7",):
        problems.append(f"{where} has no JupyterLab (nor Notebook 7): {pip} 'jupyterlab>=4', then restart the server")
    for ext, dist in SERVER_EXTENSIONS.items():
        mine, theirs = _version(dist), versions.get(dist)
        pin = f"'{dist}=={mine}'" if mine else dist
        parts = 1 if dist == "jupyterlab_widgets" else 2  # widgets: 3.x pairs with ipywidgets 8
        if ext not in seen["extensions"]:
            problems.append(f"{where} lacks the JupyterLab extension {ext} (figures and widgets would not show): "
                            f"{pip} {pin}, then restart the server")
        elif mine and theirs and _release(theirs, parts) != _release(mine, parts):
            problems.append(f"{where} has {dist} {theirs}, the kernel {mine} (the page would not draw the kernel's "
                            f"widgets): {pip} {pin}, then restart the server")
    kernels = seen["kernels"]
    if kernels is not None:
        from ..report import KERNEL
        here = os.path.normpath(sys.executable)

        def runs_here(argv) -> bool:
            exe = argv[0] if argv else ""
            exe = seen["executable"] if exe in ("python", "python3") else exe  # ipykernel's own spec: the server's
            return os.path.normpath(exe) == here

        if KERNEL not in kernels and not any(runs_here(argv) for argv in kernels.values()):
            problems.append(f"{where} offers no kernel running this Python ({sys.executable}): {sys.executable} "
                            f"-m ipykernel install --prefix {seen['prefix']} --name {KERNEL} "
                            "--display-name 'CLIP Lab (Python 3)'")
    return problems


# -- the prepared cache: what it was built with, and whether this machine reads it ---------------------

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


# -- the whole check ------------------------------------------------------------------------------------

def check_machine(hub: str | os.PathLike | None = None, cache: str | os.PathLike | None = None,
                  info: list | None = None) -> list[str]:
    """Every problem found, one line each with its fix (empty: ready). hub: check the Jupyter server's
    environment instead of the kernel's for the page's extensions and the kernel ('auto' finds it, or its
    Python / prefix). cache: cache.zip or the folder it was unpacked into (default: the cache folder, when
    it holds a manifest). info: a list that gets the lines that are not problems (what was checked, the
    cache's verdict with its counts)."""
    problems = _packages()
    for step in [_cache] + ([_kernel, _widgets_front_end] if hub is None else []):
        problems += step()
    if hub is not None:
        problems += check_server(hub, info)
    if not any(p.startswith("package torch") or p.startswith("package open_clip") for p in problems):
        problems += _models()
        try:
            problems += check_cache(cache, info)
        except LabError as e:
            problems.append(str(e))
    return problems


def prepare(out: str | Path = "cache.zip", modules: list[str] | None = None) -> dict:
    """Execute the solutions against a fresh cache folder and zip it with its MANIFEST -> {path, bytes,
    files, manifest}."""
    from .build import build
    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        cache, editions = Path(tmp) / "cache", Path(tmp) / "build"
        before = os.environ.get("LAB_CACHE_DIR")
        os.environ["LAB_CACHE_DIR"] = str(cache)  # the kernels inherit it
        try:
            build(editions, modules=modules)
        finally:
            if before is None:
                os.environ.pop("LAB_CACHE_DIR", None)
            else:
                os.environ["LAB_CACHE_DIR"] = before
        for db in cache.glob("*.sqlite3"):  # fold the write-ahead log into the database file
            conn = sqlite3.connect(db)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
        files = sorted(p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(("-wal", "-shm", ".lock"))
                       and p.name != MANIFEST)
        about = manifest(cache, modules)
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for p in files:
                z.write(p, p.relative_to(cache))
            z.writestr(MANIFEST, json.dumps(about, indent=1, sort_keys=True) + "\n")
    size = out.stat().st_size
    if size > MAX_ZIP_MB * 2 ** 20:
        raise LabError(f"{out} is {size / 2 ** 20:.0f} MB, over the {MAX_ZIP_MB} MB a USB stick hand-out allows")
    return {"path": str(out), "bytes": size, "files": len(files), "manifest": about}


def timed_check(hub=None, cache=None, info: list | None = None) -> tuple[list[str], float]:
    start = time.perf_counter()
    problems = check_machine(hub, cache, info)
    return problems, time.perf_counter() - start
