"""The five widgets run from JupyterLab (Run All Cells) and driven by mouse and keyboard in the page,
each result checked in the page: playground (image slider, class list, file upload, model switch; its
second display follows), explorer (lasso, box select, point click, typed query, colouring),
attribution viewer (method, prompt, opacity), robustness dashboard (point click) and head explorer
(a heat-map cell clicked: that head's TextSpan texts, as the library computes them here); then the page
is re-opened on the running kernel (the widgets work) and the kernel restarted (each widget says to
re-run its cell, also after another re-open). The tests run in file order on one page (each step
starts from the state the last left)."""
import re
import time

import numpy as np
import pytest
from PIL import Image

from lab.data import world
from widgets._display import RERUN

from . import _lab

CELL = {"playground": 0, "again": 1, "explorer": 2, "viewer": 3, "dashboard": 4, "heads": 5}  # code cells of widgets.ipynb
INTERACTIONS = []  # (widget, what was done) for the summary line


@pytest.fixture(scope="module")
def lab(browser, lab_server, screenshots):
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(90_000)  # each step waits for the kernel's answer (slow on a busy machine)
    from ._jupyter import Problems
    page.problems = Problems(page)
    try:
        _lab.open_notebook(page, lab_server, "widgets.ipynb")
        _lab.run_all(page, timeout=300)
        _lab.check_no_widget_trouble(page)
        page.problems.check()  # nothing wrong while the widgets first appeared
        _lab.shot(page, screenshots, "widgets-first-run")
        yield page
    finally:
        context.close()
        print(f"widgets: {len(INTERACTIONS)} interactions checked in the page")


def out(page, name):
    return _lab.cell_output(page, CELL[name])


def parts(area):
    """The widget's own HTML panes (children of its outer VBox, not a progress bar's)."""
    return area.locator(".widget-vbox").first.locator(":scope > .widget-html")


POINT_XY = """([gd, pick]) => {  // page coordinates of a trace's point (first trace with customdata if pick < 0)
    const t = pick >= 0 ? pick : gd._fullData.findIndex(d => d.customdata && d.customdata.length);
    const tr = gd._fullData[t], fl = gd._fullLayout, r = gd.getBoundingClientRect();
    const xa = fl[tr.xaxis.replace('x', 'xaxis')], ya = fl[tr.yaxis.replace('y', 'yaxis')];
    return [r.left + xa._offset + xa.d2p(tr.x[0]), r.top + ya._offset + ya.d2p(tr.y[0])];
}"""


CELL_XY = """([gd, x, y]) => {  // page coordinates of a heat-map cell's centre, by its axis labels
    const fl = gd._fullLayout, r = gd.getBoundingClientRect();
    return [r.left + fl.xaxis._offset + fl.xaxis.d2p(x), r.top + fl.yaxis._offset + fl.yaxis.d2p(y)];
}"""


def click_point(page, plot, trace: int = -1):
    plot.scroll_into_view_if_needed()
    x, y = page.evaluate(POINT_XY, [plot.element_handle(), trace])
    page.mouse.click(x, y)


def did(widget, what, shot):
    """Count a checked interaction and screenshot its result: shot = (folder, name, locator)."""
    INTERACTIONS.append((widget, what))
    folder, name, locator = shot
    _lab.shot(locator.page, folder, name, locator)


def wait_text(locator, pattern: str, timeout: float = 120):
    """Wait until the locator's text matches the regular expression."""
    locator.page.wait_for_function(
        "([el, p]) => new RegExp(p).test(el.innerText)", arg=[locator.element_handle(), pattern],
        timeout=timeout * 1000, polling=200)


def img_src(locator) -> str:
    return locator.get_attribute("src") or ""


def wait_src(img, ok, timeout: float = 90) -> str:
    """Wait until ok(the image's src) holds -> the src (the widget replaces its HTML, so the locator is
    read afresh each time rather than holding on to one element)."""
    deadline = time.monotonic() + timeout
    while not ok(src := img_src(img)):
        assert time.monotonic() < deadline, f"the image did not change in {timeout} s"
        img.page.wait_for_timeout(200)
    return src


def wait_steady_same_src(img, other, ok, timeout: float = 90, steady: float = 1.5):
    """Wait until two images (two displays of one widget) show the same src, ok(src) holds, and it
    has not changed for `steady` seconds."""
    deadline, since, last = time.monotonic() + timeout, time.monotonic(), None
    while True:
        src = img_src(img)
        now = src if src == img_src(other) and ok(src) else None
        since = since if now == last else time.monotonic()
        last = now
        if now is not None and time.monotonic() - since >= steady:
            return
        assert time.monotonic() < deadline, f"the two displays did not settle on the same new image in {timeout} s"
        img.page.wait_for_timeout(200)


def labelled(area, kind: str, label: str):
    """The input of an ipywidget by its description label, e.g. labelled(area, 'widget-text', 'prompt')."""
    return area.locator(f".{kind}", has=area.page.locator(".widget-label", has_text=re.compile(f"^{label}$")))


def press(locator, key: str, times: int):
    """Focus a control by a click, then press a key as a person would (e.g. a slider's arrows)."""
    locator.click()
    for _ in range(times):
        locator.press(key)


def readout(area, label: str):
    return labelled(area, "widget-slider", label).locator(".widget-readout")


def bars(area) -> list[str]:
    """The class names on the playground's probability bars, as drawn."""
    return area.locator(".js-plotly-plot").first.evaluate("gd => [...gd.data[0].y]")


def learners_drawing(path):
    """A yellow star painted on a black canvas, as a learner would draw and upload it (256 px PNG)."""
    mask = np.asarray(world.shape_mask("star", 256, 128, 128, 95, 0.1)) > 127
    pixels = np.where(mask[..., None], np.array(world.COLOURS["yellow"], np.uint8), np.uint8(8))
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def test_all_widgets_render(lab, screenshots):
    _lab.check_no_widget_trouble(lab)
    for name in CELL:
        out(lab, name).locator(".jupyter-widgets").first.wait_for()
    assert lab.locator(f"{_lab.PANEL} .js-plotly-plot").count() == 6  # playground x2, explorer, dashboard x2, heads
    counts = lab.locator(f"{_lab.PANEL} .js-plotly-plot").evaluate_all("gds => gds.map(gd => gd._fullData.length)")
    assert all(counts), f"empty figures (traces per figure: {counts})"
    _lab.shot(lab, screenshots, "widgets-all")
    lab.problems.check()


def _plot_box(area):
    box = area.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    assert box, "no plot area"
    return box


def _drag(page, points):
    page.mouse.move(*points[0])
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*p, steps=4)
    page.mouse.up()


def test_playground_slider_classes_upload_and_model(lab, screenshots, tmp_path):
    area, again = out(lab, "playground"), out(lab, "again")
    area.scroll_into_view_if_needed()
    message = parts(area).nth(0)
    preview = area.locator(".widget-hbox .widget-html img").first
    before = img_src(preview)
    press(labelled(area, "widget-slider", "image #").locator(".noUi-handle"), "ArrowRight", 3)
    wait_text(readout(area, "image #"), "^3$")
    # the image passes through #1 and #2 on its way: wait until it settles, the same in the second display
    wait_steady_same_src(preview, again.locator(".widget-hbox .widget-html img").first, lambda src: src != before)
    did("playground", "image slider moved by keyboard: a new image and prediction",
        shot=(screenshots, "playground-slider", area))

    names = labelled(area, "widget-textarea", "classes").locator("textarea")
    names.click()
    lab.keyboard.press("Control+a")
    lab.keyboard.type("circle\nstar\nsquare")
    # the bars follow the text as it is typed ("squa" on the way): wait for the whole list
    lab.wait_for_function("gd => [...gd.data[0].y].sort().join() === 'circle,square,star'",
                          arg=area.locator(".js-plotly-plot").first.element_handle(), timeout=60_000, polling=200)
    assert sorted(bars(area)) == ["circle", "square", "star"]
    did("playground", "class list edited: three bars", shot=(screenshots, "playground-classes", area))

    with lab.expect_file_chooser() as chooser:  # the upload button opens the system's file chooser
        area.locator("button.widget-upload").click()
    chooser.value.set_files(learners_drawing(tmp_path / "my-star.png"))
    wait_text(message, "^lab-vit-tiny: star")
    assert "upload (1)" in area.inner_text()
    did("playground", "a drawing uploaded (yellow star on black): 'star'", shot=(screenshots, "playground-upload", area))

    labelled(area, "widget-dropdown", "model").locator("select").select_option("lab-rn-tiny")
    wait_text(message, "^lab-rn-tiny: star")
    wait_text(parts(again).nth(0), "^lab-rn-tiny: star")
    did("playground", "model switched: lab-rn-tiny also says 'star'", shot=(screenshots, "playground-model", area))
    lab.problems.check()


def test_explorer_lasso_box_click_query_colour(lab, screenshots):
    area = out(lab, "explorer")
    area.scroll_into_view_if_needed()
    grid, detail = parts(area).nth(1), parts(area).nth(0)
    b = _plot_box(area)
    cx, cy, w, h = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, b["width"], b["height"]
    _drag(lab, [(cx - w * .3, cy - h * .3), (cx + w * .3, cy - h * .3), (cx + w * .3, cy + h * .3),
                (cx - w * .3, cy + h * .3), (cx - w * .3, cy - h * .29)])  # the map's default tool is the lasso
    wait_text(grid, r"\d+ selected")
    lab.wait_for_timeout(3000)  # one selection message per trace: let them all arrive
    lassoed = int(re.search(r"(\d+) selected", grid.inner_text()).group(1))
    assert lassoed > 0 and grid.locator("img").count() == min(lassoed, 48)
    did("explorer", f"lasso: {lassoed} points, their images shown", shot=(screenshots, "explorer-lasso", area))

    area.hover()
    area.locator(".modebar-btn[data-val='select']").click()  # Box Select (the click may scroll the page)
    b = _plot_box(area)
    cx, cy = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
    _drag(lab, [(cx - w * .45, cy - h * .45), (cx, cy)])
    lab.wait_for_function("([el, n]) => { const m = /(\\d+) selected/.exec(el.innerText); return m && +m[1] !== n; }",
                          arg=[grid.element_handle(), lassoed])
    lab.wait_for_timeout(3000)
    boxed = int(re.search(r"(\d+) selected", grid.inner_text()).group(1))
    assert boxed > 0 and grid.locator("img").count() == min(boxed, 48)
    did("explorer", f"box select: {boxed} points, their images shown", shot=(screenshots, "explorer-box", area))

    click_point(lab, area.locator(".js-plotly-plot").first, 0)
    wait_text(detail, "clicked point and its nearest neighbours")
    assert detail.locator("img").count() == 9  # the point and its 8 neighbours
    did("explorer", "point clicked: its neighbours shown", shot=(screenshots, "explorer-click", area))

    query = labelled(area, "widget-text", "query").locator("input")
    query.click()
    query.type("a red circle")
    query.press("Enter")
    wait_text(grid, "nearest to “a red circle”")
    lab.wait_for_function("(el) => [...el.querySelectorAll('.shape-label-text')].some(t => t.textContent === 'a red circle')",
                          arg=area.locator(".js-plotly-plot").element_handle())  # the star's label: a shape above the points
    did("explorer", "query typed: placed on the map, nearest images shown",
        shot=(screenshots, "explorer-query", area))

    labelled(area, "widget-dropdown", "colour by").locator("select").select_option("colour")
    lab.wait_for_function("(el) => [...el.querySelectorAll('.legendtext')].some(t => t.textContent === 'red')",
                          arg=area.locator(".js-plotly-plot").element_handle())
    did("explorer", "colouring changed", shot=(screenshots, "explorer-colour", area))
    lab.problems.check()


def test_attribution_viewer_method_changes_the_overlay(lab, screenshots):
    area = out(lab, "viewer")
    area.scroll_into_view_if_needed()
    overlay = area.locator("figure img").nth(1)
    message = parts(area).nth(0)
    before = img_src(overlay)
    labelled(area, "widget-dropdown", "method").locator("select").select_option("rollout")
    wait_text(message, r"^lab-vit-tiny / rollout")
    wait_src(overlay, lambda src: src != before)
    did("attribution viewer", "method changed: new overlay", shot=(screenshots, "viewer-rollout", area))

    labelled(area, "widget-dropdown", "method").locator("select").select_option("relevance")  # rollout ignores the prompt
    wait_text(message, r"^lab-vit-tiny / relevance")
    prompt = labelled(area, "widget-text", "prompt").locator("input")
    before = img_src(overlay)
    prompt.click()
    lab.keyboard.press("Control+a")
    lab.keyboard.type("a photo of a ring.")
    lab.keyboard.press("Enter")
    wait_text(message, "“a photo of a ring.”")
    wait_src(overlay, lambda src: src != before)
    assert "a photo of a ring." in area.locator("figcaption").nth(1).inner_text()
    did("attribution viewer", "prompt typed: its overlay", shot=(screenshots, "viewer-prompt", area))

    before, status = img_src(overlay), message.inner_text()
    press(labelled(area, "widget-slider", "opacity").locator(".noUi-handle"), "ArrowLeft", 4)
    wait_text(readout(area, "opacity"), "^0.30$")
    wait_src(overlay, lambda src: src != before)
    assert message.inner_text() == status  # re-blended, not recomputed
    did("attribution viewer", "opacity lowered: the overlay re-blended", shot=(screenshots, "viewer-opacity", area))
    lab.problems.check()


def test_robustness_dashboard_click_shows_worst_classes(lab, screenshots):
    area = out(lab, "dashboard")
    area.scroll_into_view_if_needed()
    plot = area.locator(".js-plotly-plot").first
    detail = parts(area).first
    click_point(lab, plot)  # a model's point (the traces with customdata)
    wait_text(detail, "worst-hit classes")
    assert "worst-hit classes" in detail.inner_text() and detail.locator("table").count() == 1
    did("robustness dashboard", "point clicked: worst classes shown", shot=(screenshots, "dashboard-click", area))
    lab.problems.check()


def test_head_explorer_cell_click_shows_the_heads_texts(lab, screenshots):
    import lab as clip_lab
    from lab.data import load_dataset
    from lab.studies import decomposition as dc, textspan as ts
    model = clip_lab.load_model("lab-vit-tiny")  # the head's texts as the library computes them, here
    d = dc.decompose_dataset(model, load_dataset("shapeworld", "", "test", 60, 0), cache=False)
    pool = ts.world_pool()
    expected = list(ts.text_span(d.head(3, 1), model.encode_texts(pool, progress=False), pool, m=5).table["text"])

    area = out(lab, "heads")
    area.scroll_into_view_if_needed()
    plot = area.locator(".js-plotly-plot").first
    detail, view = parts(area).nth(1), parts(area).nth(2)
    x, y = lab.evaluate(CELL_XY, [plot.element_handle(), "H1", "L3"])
    lab.mouse.click(x, y)
    wait_text(detail, r"^L3\.H1: mean-ablating it takes zero-shot accuracy from .* \(drop -?\d+\.\d points\)")
    assert detail.locator("table.head-texts tbody td:nth-child(2)").all_inner_texts() == expected
    wait_text(view, f"Where L3\\.H1 writes “{re.escape(expected[0])}”")
    assert view.locator("img").count() == 8  # 4 images, each beside its map
    lab.wait_for_function("gd => (gd.layout.shapes || []).some(s => s.name === 'selected')", arg=plot.element_handle())
    did("head explorer", f"heat-map cell L3.H1 clicked: its texts ({', '.join(expected)}), ablation and maps",
        shot=(screenshots, "heads-click", area))
    lab.problems.check()


def test_reopened_page_works_and_a_restarted_kernel_asks_to_rerun(lab, lab_server, screenshots):
    _lab.save(lab, lab_server.root / "widgets.ipynb")
    lab.reload()  # the notebook re-opened on its running kernel
    _lab.wait_kernel_idle(lab)
    for name in CELL:
        out(lab, name).locator(".jupyter-widgets").first.wait_for()
    area = out(lab, "playground")
    area.scroll_into_view_if_needed()
    _lab.check_no_widget_trouble(lab)
    labelled(area, "widget-dropdown", "model").locator("select").select_option("lab-vit-tiny")
    wait_text(parts(area).nth(0), "^lab-vit-tiny: ")
    lab.problems.check()  # no "[anywidget] Failed to initialize model." or any other error
    did("page", "re-opened on the running kernel: the playground still answers",
        shot=(screenshots, "reopened", area))

    notes = lab.locator(f"{_lab.PANEL} .clip-lab-rerun")
    assert notes.count() == len(CELL) and not any(n.is_visible() for n in notes.all())  # hidden while live
    _lab.menu(lab, "Kernel", "Restart Kernel…")
    lab.locator(".jp-Dialog .jp-mod-accept").click()
    _lab.wait_kernel_idle(lab)
    lab.wait_for_function("(p) => [...document.querySelectorAll(p + ' .clip-lab-rerun')].every(n => n.offsetParent)",
                          arg=_lab.PANEL)
    assert all(n.inner_text() == RERUN for n in notes.all())
    assert "Traceback" not in lab.locator(f"{_lab.PANEL} .jp-Notebook").inner_text()
    did("page", "kernel restarted: every widget says to re-run its cell", shot=(screenshots, "restarted", lab.locator(_lab.PANEL)))

    _lab.save(lab, lab_server.root / "widgets.ipynb")
    lab.reload()  # re-opened after the restart: no widget models anywhere
    lab.locator(f"{_lab.PANEL} .jp-Notebook .jp-Cell").first.wait_for()
    lab.wait_for_function("(p) => { const n = [...document.querySelectorAll(p + ' .clip-lab-rerun')];"
                          " return n.length && n.every(e => e.offsetParent); }", arg=_lab.PANEL)
    assert "Traceback" not in lab.locator(f"{_lab.PANEL} .jp-Notebook").inner_text()
    lab.problems.check(allowed=("widget model not found",))  # JupyterLab's own log line for an unfound model
    did("page", "re-opened after the restart: every widget says to re-run its cell",
        shot=(screenshots, "reopened-after-restart", lab.locator(_lab.PANEL)))
