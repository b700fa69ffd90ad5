"""Helpers every lab notebook calls: set up the output folder and plotly, save figures, record
what the run used (read back by `python -m lab report` into its manifest).

    out = notebook.setup(output_dir)                 # creates the folder, picks plotly's renderer
    notebook.save_figure(fig, out, "per_template")   # out/figures/per_template.html (+ .png, .svg)
    notebook.record(out, model=model, dataset=ds, results={"top1": 0.71})   # out/run.json
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import plotly.io as pio

from . import _static_export
from .core import memo

__all__ = ["RENDERERS", "RUN_FILE", "setup", "BROWSERS", "STATIC_FIX", "static_figures_missing", "save_figure",
           "record"]

# Each figure is stored once, as plotly's JSON with numpy arrays kept as base64 typed arrays: JupyterLab's
# plotly extension draws it live and when a saved notebook is reopened (trusted or not); the report's
# HTML export turns it into a div + Plotly.newPlot (lab.report.interactive_figures).
RENDERERS = "plotly_mimetype"
RUN_FILE = "run.json"
_png_warning_shown = False


def setup(output_dir: str | os.PathLike) -> Path:
    """Create the run's output folder (starting a fresh run.json) and make fig.show() emit each figure
    once, as plotly's JSON mimetype (RENDERERS), in JupyterLab, VS Code and batch runs alike."""
    out = Path(output_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / RUN_FILE).unlink(missing_ok=True)
    pio.renderers.default = RENDERERS
    return out


BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
STATIC_FIX = "apt-get install -y chromium"  # the one system package static figures need (Debian/Ubuntu)


def static_figures_missing() -> str | None:
    """None when PNG/SVG export works here (kaleido + a Chrome/Chromium), else what to install."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return "pip install kaleido"
    if os.environ.get("BROWSER_PATH") or any(shutil.which(b) for b in BROWSERS):
        return None
    return STATIC_FIX


def _write_static(fig, folder: Path, name: str) -> list[Path]:
    """<name>.png (2x) and <name>.svg. Each image is kept in the lab cache under a digest of the
    figure's JSON and plotly/kaleido versions, so a warm re-run copies it instead of starting a
    browser; a read-only cache only costs the export."""
    store = memo.folder(True, "figures")
    digest = memo.key("figure", [fig.to_json()], packages=["plotly", "kaleido"])
    paths = []
    for fmt, scale in (("png", 2), ("svg", 1)):
        path, kept = folder / f"{name}.{fmt}", store / f"{digest}.{fmt}"
        if kept.exists():
            shutil.copyfile(kept, path)
        else:
            data = _static_export.export(fig, fmt, scale)
            path.write_bytes(data)
            try:
                memo.atomic_save(kept, data=data)
            except OSError:
                pass
        paths.append(path)
    return paths


def save_figure(fig, output_dir: str | os.PathLike, name: str) -> list[Path]:
    """Write `fig` as output_dir/figures/<name>.html (plotly.js shared in that folder, so the
    report opens offline) and, when a Chrome/Chromium is on the machine, <name>.png and <name>.svg.
    A name that holds a model's path or hub id is made a file name (each run of other characters -> "_")."""
    global _png_warning_shown
    name = re.sub(r"[^\w.+-]+", "_", name)
    folder = Path(output_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    html = folder / f"{name}.html"
    fig.write_html(html, include_plotlyjs="directory", full_html=True)
    written = [html]
    missing = static_figures_missing()
    if missing is None:
        try:
            written += _write_static(fig, folder, name)
        except Exception as e:  # the headless browser failed or missed its deadline: keep the HTML
            print(f"figure {name}: PNG/SVG export failed ({type(e).__name__}: {str(e)[:300]}); the HTML copy is saved")
    elif not _png_warning_shown:
        _png_warning_shown = True
        print(f"figures are saved as HTML only: PNG and SVG need a headless Chrome/Chromium; run `{missing}`")
    return written


def _describe(value):
    from .data import dataset_identity
    if hasattr(value, "fingerprint") and hasattr(value, "embed_dim"):  # a ClipModel
        parts = Path(value.source).parts
        at = parts.index("snapshots") if "snapshots" in parts[1:-1] else 0  # a hub cache: models--org--name/snapshots/rev
        revision = parts[at + 1] if at and parts[at - 1].startswith("models--") else None
        return {"name": value.name, "fingerprint": value.fingerprint, "source": value.source,
                "format": value.model_cfg.get("format", "open_clip"), "revision": revision, "link": value.link,
                "device": value.device_name, "precision": value.precision}
    if hasattr(value, "content_key") and hasattr(value, "classes"):  # a dataset
        return dataset_identity(value)
    return value


def record(output_dir: str | os.PathLike, **info) -> dict:
    """Merge `info` into output_dir/run.json (models and datasets are stored by identity:
    name + fingerprint, name + size + digest of item keys). Returns the whole record."""
    path = Path(output_dir) / RUN_FILE
    data = json.loads(path.read_text()) if path.exists() else {}
    for key, value in info.items():
        data[key] = [_describe(v) for v in value] if isinstance(value, (list, tuple)) else _describe(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=float))
    return data
