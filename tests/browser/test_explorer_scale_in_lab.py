"""The embedding explorer on a million points (tests/browser/_million.py) in JupyterLab, driven by
mouse and keyboard: first render (density image + sampled points), a lasso (its images in the grid;
a lasso where nothing lies still answers), a zoom (the points inside the view are redrawn) and a
typed query (star and nearest images). Prints the wall time of render, lasso and query (the issue's
floors are 10 s, 2 s and 1 s; benchmarks/bench_explorer_scale.py reports them, nothing asserts them).

    python -m pytest -q -s tests/browser/test_explorer_scale_in_lab.py
"""
import re
import time

import nbformat
import pytest

from . import _lab
from .test_widgets_in_lab import _drag, _plot_box, labelled, parts

NOTEBOOK = "explorer_million.ipynb"
CELLS = ["from tests.browser._million import million_arrays\nx, coords, points, data, model = million_arrays()",
         "from widgets.embedding_explorer import EmbeddingExplorer\n"
         "explorer = EmbeddingExplorer.from_arrays(x, coords, points, data, model)\nexplorer"]
SECONDS = {}  # step -> wall seconds, printed at the end


@pytest.fixture(scope="module")
def lab(browser, lab_server, screenshots):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "clip-lab", "display_name": "CLIP Lab (Python 3)", "language": "python"}
    nbformat.write(nb, lab_server.root / NOTEBOOK)
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(120_000)
    from ._jupyter import Problems
    page.problems = Problems(page)
    try:
        _lab.open_notebook(page, lab_server, NOTEBOOK)
        yield page
    finally:
        context.close()
        print("explorer at 1,000,000 points: " + ", ".join(f"{k} {v:.2f} s" for k, v in SECONDS.items()))


def timed(step: str, since: float):
    SECONDS[step] = time.monotonic() - since


def run(page, index: int, timeout: float = 300):
    cell = page.locator(f"{_lab.PANEL} .jp-CodeCell").nth(index)
    cell.locator(".cm-content").click()
    _lab.run_cell(page, cell, timeout)


DRAWN = """gd => ({images: gd._fullLayout.images.length, shown: gd.querySelectorAll('.imagelayer image').length,
               points: gd._fullData.filter(t => t.customdata).reduce((n, t) => n + t.x.length, 0)})"""
PICKED = "gd => gd._fullData.filter(t => t.customdata).reduce((n, t) => n + (t.selectedpoints || []).length, 0)"
QUERY_DRAWN = """([gd, text]) => {  // the star (a shape, above the WebGL points), its label and 12 rings
    const shapes = gd._fullLayout.shapes, drawn = gd.querySelectorAll('.shapelayer path').length;
    return shapes.filter(s => s.name === 'nearest').length === 12 && drawn >= 14
        && [...gd.querySelectorAll('.shape-label-text')].some(t => t.textContent === text);
}"""
DATA_BOX = """([gd, b]) => {  // a box on the page [left, top, right, bottom] in data: [x0, x1, y0, y1]
    const r = gd.getBoundingClientRect(), xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
    return [xa.p2d(b[0] - r.left - xa._offset), xa.p2d(b[2] - r.left - xa._offset),
            ya.p2d(b[3] - r.top - ya._offset), ya.p2d(b[1] - r.top - ya._offset)];
}"""
POINTS_IN = """([gd, [x0, x1, y0, y1]]) => {  // drawn points inside a data box
    let n = 0;
    for (const t of gd._fullData.filter(t => t.customdata))
        for (let i = 0; i < t.x.length; i++) n += t.x[i] >= x0 && t.x[i] <= x1 && t.y[i] >= y0 && t.y[i] <= y1;
    return n;
}"""


def selected(grid) -> int:
    found = re.search(r"([\d,]+) selected", grid.inner_text())
    return int(found.group(1).replace(",", "")) if found else -1


def wait_grid(page, grid, pattern: str, images: int):
    """Until the grid's text matches and it shows `images` loaded thumbnails."""
    page.wait_for_function(
        "([el, p, n]) => new RegExp(p).test(el.innerText) && el.querySelectorAll('img').length === n"
        " && [...el.querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 0)",
        arg=[grid.element_handle(), pattern, images], polling=50)


def test_render_lasso_zoom_query_and_an_empty_lasso(lab, screenshots):
    run(lab, 0)  # the arrays: not timed (a researcher has them already)
    area = _lab.cell_output(lab, 1)
    cell = lab.locator(f"{_lab.PANEL} .jp-CodeCell").nth(1)
    cell.locator(".cm-content").click()
    start = time.monotonic()
    lab.keyboard.press("Shift+Enter")
    plot = area.locator(".js-plotly-plot")
    plot.wait_for()
    lab.wait_for_function(f"gd => {{ const d = ({DRAWN})(gd); return d.shown === 1 && d.points > 0; }}",
                          arg=plot.element_handle(), polling=50)
    timed("first render", start)
    _lab.wait_kernel_idle(lab)
    drawn = plot.evaluate(DRAWN)
    assert drawn["images"] == 1 and 0 < drawn["points"] <= 20_000, drawn  # the density image + a sample
    _lab.shot(lab, screenshots, "explorer-1m-render", area)

    grid = parts(area).nth(1)
    area.scroll_into_view_if_needed()
    b = _plot_box(area)
    cx, cy, w, h = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, b["width"], b["height"]
    _drag(lab, [(cx - w * .15, cy - h * .15), (cx + w * .15, cy - h * .15), (cx + w * .15, cy + h * .15),
                (cx - w * .15, cy + h * .15), (cx - w * .15, cy - h * .14)])  # the map's default tool is the lasso
    start = time.monotonic()
    wait_grid(lab, grid, r"[\d,]+ selected", 48)
    timed("lasso -> thumbnails", start)
    lassoed = selected(grid)
    assert lassoed > 20_000, f"{lassoed} selected: the lasso holds far more points than are drawn"
    share = lab.wait_for_function(f"gd => {{ const n = ({PICKED})(gd); return n && n / ({DRAWN})(gd).points; }}",
                                  arg=plot.element_handle()).json_value()  # plotly's own pick among the drawn
    assert share == pytest.approx(lassoed / 1_000_000, rel=0.1)  # the kernel's pick among all, the same share
    _lab.shot(lab, screenshots, "explorer-1m-lasso", area)

    area.hover()
    area.locator(".modebar-btn[data-val='zoom']").click()
    box = lab.evaluate(DATA_BOX, [plot.element_handle(), [cx - 40, cy - 30, cx + 40, cy + 30]])
    before = lab.evaluate(POINTS_IN, [plot.element_handle(), box])
    _drag(lab, [(cx - 40, cy - 30), (cx + 40, cy + 30)])  # zoom into a small box of the map's centre
    lab.wait_for_function(f"([gd, box, n]) => ({POINTS_IN})([gd, box]) > 4 * n",
                          arg=[plot.element_handle(), box, before], polling=100)
    _lab.shot(lab, screenshots, "explorer-1m-zoom", area)
    lab.mouse.dblclick(b["x"] + 10, b["y"] + 10)  # back to the whole map (a corner: no point clicked)
    lab.wait_for_function(f"([gd, box, n]) => ({POINTS_IN})([gd, box]) === n",  # the first sample again
                          arg=[plot.element_handle(), box, before], polling=100)
    _lab.wait_kernel_idle(lab)
    lab.wait_for_timeout(1000)  # the query is timed from a page at rest, not during the redraw

    query = labelled(area, "widget-text", "query").locator("input")
    query.click()
    query.type("a red circle")
    start = time.monotonic()
    query.press("Enter")
    wait_grid(lab, grid, "nearest to “a red circle”", 12)
    lab.wait_for_function(QUERY_DRAWN, arg=[plot.element_handle(), "a red circle"], polling=50)
    timed("query -> star and neighbours", start)
    assert len(grid.locator("figcaption").all_inner_texts()) == 12
    _lab.shot(lab, screenshots, "explorer-1m-query", area)

    area.hover()
    area.locator(".modebar-btn[data-val='lasso']").click()
    _drag(lab, [(b["x"] + 4, b["y"] + 4), (b["x"] + 40, b["y"] + 4), (b["x"] + 40, b["y"] + 30),
                (b["x"] + 4, b["y"] + 30), (b["x"] + 4, b["y"] + 5)])  # a corner where no point lies
    wait_grid(lab, grid, r"^0 selected", 0)  # the selection still reached the kernel
    lab.problems.check()
