"""plotly figures in JupyterLab, each stored once as plotly's JSON (lab.notebook.RENDERERS): drawn
and interactive when run live, saved without an HTML copy, and drawn again when the executed notebook
of a report (`python -m lab report`) is reopened, untrusted, in JupyterLab.

    python -m pytest -q tests/browser/test_figures_in_lab.py
"""
import os
import shutil
import subprocess
import sys

import nbformat

from . import _lab
from ._jupyter import KERNEL, ROOT

POINTS = 20_000
CELLS = ["from lab import notebook\nout = notebook.setup(output_dir)",
         "import numpy as np\nimport plotly.graph_objects as go\n"
         f"xy = np.random.default_rng(0).standard_normal((2, {POINTS})).astype(np.float32)\n"
         "go.Figure(go.Scattergl(x=xy[0], y=xy[1], mode='markers')).show()",
         "go.Figure(go.Bar(x=['a', 'b'], y=[1, 2]))  # a figure as the cell's value"]
DRAWN = """(panel) => [...document.querySelectorAll(panel + ' .jp-RenderedPlotly.js-plotly-plot')]
    .filter(d => d.querySelector('.main-svg') && d._fullData).map(d => d._fullData[0].x.length)"""  # output = plot


def figures_notebook(path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("output_dir: str = 'figures_out'  # where notebook.setup writes")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in CELLS]
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "CLIP Lab (Python 3)", "language": "python"}
    nbformat.write(nb, path)


def drawn(page) -> list[int]:
    """The points of each figure plotly.js drew in the front notebook, once both are drawn."""
    page.wait_for_function(f"(panel) => ({DRAWN})(panel).length >= 2", arg=_lab.PANEL, timeout=60_000, polling=250)
    return page.evaluate(DRAWN, _lab.PANEL)


def test_figures_draw_live_and_are_saved_once(page, lab_server, screenshots):
    figures_notebook(lab_server.root / "figures_live.ipynb")
    _lab.open_notebook(page, lab_server, "figures_live.ipynb")
    _lab.run_all(page)
    assert drawn(page) == [POINTS, 2]  # the base64 typed arrays decoded in full
    _lab.shot(page, screenshots, "figures-live")
    nb = _lab.save(page, lab_server.root / "figures_live.ipynb")
    outputs = [o.data for c in nb.cells if c.cell_type == "code" for o in c.outputs
               if _lab.PLOTLY_MIME in o.get("data", {})]
    assert len(outputs) == 2 and not [d for d in outputs if "text/html" in d]  # no HTML copy of a figure
    page.problems.check()


def test_a_reports_executed_notebook_reopens_with_its_figures(page, lab_server, screenshots, tmp_path):
    figures_notebook(tmp_path / "figures.ipynb")
    run = subprocess.run([sys.executable, "-m", "lab", "report", "--no-progress", "--notebooks",
                          str(tmp_path / "figures.ipynb"), "--out", str(tmp_path / "report")],
                         cwd=ROOT, env={**os.environ, "LAB_CACHE_DIR": str(tmp_path / "cache")},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    shutil.copyfile(tmp_path / "report" / "figures.ipynb", lab_server.root / "figures_executed.ipynb")
    _lab.open_notebook(page, lab_server, "figures_executed.ipynb")
    assert drawn(page) == [POINTS, 2]  # from the stored JSON alone, without running a cell
    _lab.shot(page, screenshots, "figures-reopened")
    page.problems.check()
