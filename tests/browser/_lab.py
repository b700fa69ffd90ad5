"""What a person does in JupyterLab, as Playwright calls: open a notebook, Run > Run All Cells, wait,
save, and read back what the page shows (cells, outputs, figures, widget messages)."""
from __future__ import annotations

import re
import time
from pathlib import Path

import nbformat

PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook tab in front
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_TROUBLE = ("Error displaying widget", "Loading widget...")


def open_notebook(page, server, name: str, timeout: float = 120):
    """Open a notebook alone (`reset`: no tab of an earlier test restored from the saved workspace) and
    wait until its kernel runs and is idle (accepting JupyterLab's kernel dialog, where the notebook's
    own kernel, "CLIP Lab (Python 3)", is preselected)."""
    page.goto(f"{server.url}/lab/tree/{name}?reset&token={server.token}")
    page.locator(f"{PANEL} .jp-Notebook .jp-Cell").first.wait_for()
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    deadline = time.monotonic() + timeout
    while not server.kernel_idle(name):
        if dialog.count():
            assert "CLIP Lab (Python 3)" in dialog.locator("select").evaluate("s => s.selectedOptions[0].textContent")
            dialog.locator(".jp-mod-accept").click()
        assert time.monotonic() < deadline, f"the kernel of {name} did not start in {timeout} s"
        time.sleep(0.3)
    wait_kernel_idle(page)


def wait_kernel_idle(page, timeout: float = 120):
    page.locator(f"{PANEL} .jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=timeout * 1000)
    assert not page.locator(".jp-Dialog").count(), page.locator(".jp-Dialog").inner_text()


def menu(page, top: str, item: str):
    """Click a main-menu entry, e.g. menu(page, "Run", "Run All Cells") (waits until it is enabled)."""
    for _ in range(60):
        page.locator(".lm-MenuBar-itemLabel", has_text=top).first.click()
        label = page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$"))
        entry = page.locator(".lm-Menu-item", has=label).first
        entry.wait_for()
        if "lm-mod-disabled" not in (entry.get_attribute("class") or ""):
            entry.click()
            return
        page.keyboard.press("Escape")
        time.sleep(0.5)
    raise AssertionError(f"menu {top} > {item} stayed disabled")


def prompts(page) -> list[str]:
    return [t.strip() for t in page.locator(f"{PANEL} .jp-CodeCell .jp-InputPrompt").all_inner_texts()]


def run_all(page, timeout: float = 240) -> float:
    """Run > Run All Cells, then wait until no cell is queued or running; returns the seconds it took."""
    start = time.monotonic()
    menu(page, "Run", "Run All Cells")
    page.wait_for_function(  # the cells are queued (a click that did not take fails here, not after timeout)
        "(panel) => [...document.querySelectorAll(panel + ' .jp-CodeCell .jp-InputPrompt')].some(e => e.textContent.includes('*'))",
        arg=PANEL, timeout=15_000, polling=100)
    page.wait_for_function(
        """(panel) => {
            const p = [...document.querySelectorAll(panel + ' .jp-CodeCell .jp-InputPrompt')].map(e => e.textContent);
            return p.length && !p.some(t => t.includes('*')) && /\\[\\d+\\]/.test(p[0]);
        }""", arg=PANEL, timeout=timeout * 1000, polling=500)
    wait_kernel_idle(page)
    return time.monotonic() - start


def code_cell(page, text: str):
    """The front notebook's code cell whose text holds `text`."""
    return page.locator(f"{PANEL} .jp-CodeCell", has_text=text)


def replace_line(page, cell, line: str, new: str):
    """Click into `line` of the cell's editor, select it (from its indentation to its end) and type `new`
    in its place, as a person would; asserts the editor then holds `new`."""
    cell.locator(".cm-line", has_text=line).click()
    page.keyboard.press("End")
    page.keyboard.press("Shift+Home")  # CodeMirror selects back to the indentation first
    page.keyboard.type(new)
    editor = cell.locator(".cm-content")
    assert new in editor.inner_text() and line not in editor.inner_text(), editor.inner_text()


def run_cell(page, cell, timeout: float = 120):
    """Shift+Enter in the cell's editor, then wait until it ran (a new execution count) and the kernel is idle."""
    prompt = cell.locator(".jp-InputPrompt")
    before = prompt.inner_text()
    page.keyboard.press("Shift+Enter")
    page.wait_for_function("([e, before]) => /\\[\\d+\\]/.test(e.textContent) && e.textContent !== before",
                           arg=[prompt.element_handle(), before], timeout=timeout * 1000, polling=200)
    wait_kernel_idle(page)


def save(page, path: Path):
    """Ctrl+S, then wait for the file on disk to carry the outputs -> the saved notebook."""
    before = path.stat().st_mtime_ns
    page.locator(f"{PANEL} .jp-Notebook").click(position={"x": 5, "y": 5})  # command mode, notebook focused
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while path.stat().st_mtime_ns == before and time.monotonic() < deadline:
        time.sleep(0.2)
    while time.monotonic() < deadline:
        try:
            return nbformat.read(path, as_version=4)
        except nbformat.reader.NotJSONError:  # caught the server mid-write (an empty or partial file)
            time.sleep(0.3)
    return nbformat.read(path, as_version=4)


def error_outputs(nb) -> list[str]:
    return [f"cell {i}: {o.ename}: {o.evalue}" for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for o in c.outputs if o.output_type == "error"]


def plotly_outputs(nb) -> int:
    return sum(PLOTLY_MIME in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def check_no_widget_trouble(page):
    text = page.locator(f"{PANEL} .jp-Notebook").inner_text()
    for trouble in WIDGET_TROUBLE:
        assert trouble not in text, f"the page shows {trouble!r}"
    assert "Traceback" not in text, "a stack trace in the page"


def cell_output(page, index: int):
    """The output area of the index-th code cell of the front notebook."""
    return page.locator(f"{PANEL} .jp-CodeCell").nth(index).locator(".jp-OutputArea")


def shot(page, folder: Path, name: str, locator=None) -> Path:
    path = folder / f"{name}.png"
    (locator or page).screenshot(path=str(path))
    return path
