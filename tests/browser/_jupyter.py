"""The browser suite's JupyterLab server (free loopback port, token, temporary root, settings,
kernelspec and LAB_CACHE_DIR) and what a page must not show (uncaught errors, console errors)."""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
KERNEL = "clip-lab"  # the name `make setup` registers and the notebooks name
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Smaller runs of the study notebooks (appended to the copy's parameters cell; every cell still runs).
SMALL = {
    "01_prompt_engineering": {"n_samples": 200, "n_val": 100, "max_selected": 3},
    "02_embedding_maps": {"n_samples": 300},
    "03_attribution": {"indices": [0, 1], "n_metric": 12, "steps": 4},
    "04_robustness": {"n_per_shift": 100, "corruptions": ["contrast"], "n_corrupted": 20,
                      "cnn_baselines": [[8, 1], [8, 2]], "n_probe_train": 300},
}
WIDGET_CELLS = [
    "from widgets.prompt_playground import PromptPlayground\nplayground = PromptPlayground(n=20)\nplayground",
    "playground  # the same widget, displayed a second time",
    "from widgets.embedding_explorer import EmbeddingExplorer\nexplorer = EmbeddingExplorer(n=150, n_neighbors=10)\n"
    "explorer",
    "from widgets.attribution_viewer import AttributionViewer\nviewer = AttributionViewer(n=10)\nviewer",
    "import lab\nfrom lab.studies import robustness as rb\nfrom lab.data.shapeworld import world_shift_sets\nfrom widgets.robustness_dashboard import RobustnessDashboard\n"
    "clips = [lab.load_model(m) for m in ('lab-vit-tiny', 'lab-rn-tiny')]\n"
    "sets, pairs, _ = world_shift_sets(60, corruptions=[])\n"
    "table, predictions = rb.run_suite(rb.world_classifiers(clips, cnn_baselines=[(8, 1), (8, 2)], n_train=300), sets)\n"
    "dashboard = RobustnessDashboard(results=dict(sets=sets, pairs=pairs, table=table, predictions=predictions))\n"
    "dashboard",
    "from widgets.head_explorer import HeadExplorer\nheads = HeadExplorer(n=60, n_images=4)\nheads",
]


def missing(what: str):
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run in CI: {what}", pytrace=False)
    pytest.skip(what)


def chromium_path() -> str | None:
    return next((p for b in ("chromium", "chromium-browser") if (p := shutil.which(b))), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _small_copy(source: Path, target: Path, values: dict):
    nb = nbformat.read(source, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source += "\n" + "\n".join(f"{k} = {v!r}  # browser suite: a smaller run" for k, v in values.items())
    nbformat.write(nb, target)


def _widgets_notebook(target: Path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# The widgets")] + [nbformat.v4.new_code_cell(c) for c in WIDGET_CELLS]
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "CLIP Lab (Python 3)", "language": "python"}
    nbformat.write(nb, target)


def _settings(folder: Path):
    """User settings of the temporary lab: every cell attached to the page (no virtual scrolling, so
    every output can be checked) and no news / update requests to the internet."""
    for plugin, values in {"notebook-extension/tracker": {"windowingMode": "none"},
                           "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}}.items():
        path = folder / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


class LabServer:
    def __init__(self, tmp: Path):
        self.tmp, self.root, self.token, self.port = tmp, tmp / "root", secrets.token_hex(16), _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "jupyterlab.log"
        self.root.mkdir()
        for stem, values in SMALL.items():
            _small_copy(ROOT / "notebooks" / f"{stem}.ipynb", self.root / f"{stem}.ipynb", values)
        _widgets_notebook(self.root / "widgets.ipynb")
        spec = tmp / "jupyter" / "kernels" / KERNEL  # this interpreter, under the project's kernel name
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "CLIP Lab (Python 3)", "language": "python"}))
        _settings(tmp / "lab-settings")
        self.env = {**os.environ, "JUPYTER_PATH": str(tmp / "jupyter"), "JUPYTER_CONFIG_DIR": str(tmp / "config"),
                    "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(tmp / "lab-settings"),
                    "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"), "LAB_CACHE_DIR": str(tmp / "cache"),
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.process = None

    def start(self, timeout: float = 90):
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                 f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={self.root}",
                 f"--IdentityProvider.token={self.token}", "--LabApp.news_url=None"]
                + (["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited ({self.process.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self):
        """The server and its kernels (its process group); SIGTERM first, so kernels shut down cleanly."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def kernel_idle(self, path: str) -> bool:
        """Whether the notebook at `path` has a session whose kernel is idle."""
        with urllib.request.urlopen(f"{self.url}/api/sessions?token={self.token}", timeout=5) as r:
            sessions = json.loads(r.read())
        return any(s["path"] == path and (s.get("kernel") or {}).get("execution_state") == "idle" for s in sessions)


class Problems:
    """Uncaught page errors and console errors of one page."""

    def __init__(self, page):
        self.items: list[str] = []
        page.on("pageerror", lambda e: self.items.append(f"pageerror: {e}"))
        page.on("console", lambda m: m.type == "error" and self.items.append(f"console.error: {m.text}"))

    def check(self, allowed: tuple[str, ...] = ()):
        bad = [p for p in self.items if not any(re.search(a, p) for a in allowed)]
        assert not bad, "errors in the page:\n" + "\n".join(bad)
