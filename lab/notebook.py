"""Helpers every lab notebook calls: set up the output folder and plotly, save figures, record
what the run used (read back by `python -m lab report` into its manifest).

    out = notebook.setup(output_dir)                 # creates the folder, picks plotly renderers
    notebook.save_figure(fig, out, "per_template")   # out/figures/per_template.html (+ .png with kaleido)
    notebook.record(out, model=model, dataset=ds, results={"top1": 0.71})   # out/run.json
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import plotly.io as pio

RENDERERS = "plotly_mimetype+notebook"  # live JupyterLab + a text/html copy that nbconvert keeps
RUN_FILE = "run.json"
_png_warning_shown = False


def setup(output_dir: str | os.PathLike) -> Path:
    """Create the run's output folder (starting a fresh run.json) and make plotly figures render
    both live and in HTML exports (the headless default emits only a mimetype that nbconvert drops)."""
    out = Path(output_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / RUN_FILE).unlink(missing_ok=True)
    pio.renderers.default = RENDERERS
    return out


def _png_possible() -> bool:
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False
    return any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome", "chrome"))


def save_figure(fig, output_dir: str | os.PathLike, name: str) -> list[Path]:
    """Write `fig` as output_dir/figures/<name>.html (plotly.js shared in that folder, so the
    report opens offline) and, when kaleido and a headless Chrome/Chromium are present, <name>.png."""
    global _png_warning_shown
    folder = Path(output_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    html = folder / f"{name}.html"
    fig.write_html(html, include_plotlyjs="directory", full_html=True)
    written = [html]
    if _png_possible():
        try:
            fig.write_image(folder / f"{name}.png", scale=2)
            written.append(folder / f"{name}.png")
        except Exception as e:  # kaleido's headless browser can time out on a loaded machine: keep the HTML
            print(f"figure {name}: PNG export failed ({type(e).__name__}: {str(e)[:120]}); the HTML copy is saved")
    elif not _png_warning_shown:
        _png_warning_shown = True
        print("figures are saved as HTML only (PNG needs `pip install kaleido` and a headless Chrome/Chromium)")
    return written


def _describe(value):
    from .data import dataset_identity
    if hasattr(value, "fingerprint") and hasattr(value, "embed_dim"):  # a ClipModel
        return {"name": value.name, "fingerprint": value.fingerprint, "source": value.source,
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
