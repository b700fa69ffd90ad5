"""`python -m lab workshop check --hub`: the Jupyter server's environment on a JupyterHub.

The page's extensions (widgets, anywidget, plotly) come from the environment the Jupyter server runs
in, which may not be the kernel's. `server_python` finds the server's Python (the running server's
process, `jupyter` on PATH, or the one named); `check_server` probes it and names each missing or
mismatched piece with the admin's command.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from ..errors import LabError

__all__ = ["SERVER_EXTENSIONS", "server_python", "check_server"]

# JupyterLab extensions the page needs -> the distribution that ships it (installed where the server runs)
SERVER_EXTENSIONS = {"@jupyter-widgets/jupyterlab-manager": "jupyterlab_widgets", "anywidget": "anywidget",
                     "jupyterlab-plotly": "plotly"}


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
