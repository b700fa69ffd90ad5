"""A learner's first workshop module (M0, learner edition: exercise stubs) in JupyterLab in a real
browser: Run All Cells runs to the end with every exercise "not attempted" and the catch-up step
continuing with the reference; then the learner types a wrong answer to m0.cosine into the cell's
editor and Shift+Enter shows the named hint (no ✓, no solution line); the right answer shows ✓."""
import nbformat
import pytest

from lab.workshop.build import student_edition
from lab.workshop.source import SOURCE, read_module

from . import _lab

STEM = "m0_setup"
STUB = "raise NotImplementedError()  # your code here"
SOLUTION = "a = a / np.linalg.norm(a, axis=1, keepdims=True)"  # a line the learner edition must not show
WRONG = "return a @ b.T"  # forgot to normalise
RIGHT = "return (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T"


@pytest.fixture
def learner_m0(lab_server):
    path = lab_server.root / f"{STEM}.ipynb"
    nbformat.write(student_edition(read_module(SOURCE / f"{STEM}.ipynb").notebook, STEM), path)
    return path


def test_learner_answers_wrongly_and_sees_a_hint(page, lab_server, screenshots, learner_m0):
    _lab.open_notebook(page, lab_server, learner_m0.name)
    seconds = _lab.run_all(page, timeout=300)
    nb = _lab.save(page, learner_m0)
    assert not _lab.error_outputs(nb), _lab.error_outputs(nb)
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code"), "a cell did not run"
    text = page.locator(f"{_lab.PANEL} .jp-Notebook").inner_text()
    assert "○ m0.cosine: not attempted" in text and "○ m0.clip_loss: not attempted" in text
    assert "↪ m0.cosine: continuing with the reference solution" in text
    assert SOLUTION not in text
    _lab.check_no_widget_trouble(page)
    _lab.shot(page, screenshots, "workshop-m0-run-all")

    cell = _lab.code_cell(page, "def cosine")
    out = cell.locator(".jp-OutputArea")
    _lab.replace_line(page, cell, STUB, WRONG)
    _lab.run_cell(page, cell)
    shown = out.inner_text()
    assert "✗ m0.cosine: forgot to normalise: a dot product is a cosine only between unit vectors" in shown, shown
    assert "✓" not in shown and "not attempted" not in shown, shown
    assert "↪ m0.cosine: continuing with the reference solution" in shown, shown
    assert SOLUTION not in page.locator(f"{_lab.PANEL} .jp-Notebook").inner_text()
    assert "Traceback" not in shown, shown
    cell.scroll_into_view_if_needed()
    _lab.shot(page, screenshots, "workshop-m0-hint", cell)

    _lab.replace_line(page, cell, WRONG, RIGHT)
    _lab.run_cell(page, cell)
    shown = out.inner_text()
    assert "✓ m0.cosine: correct" in shown, shown
    assert "✗" not in shown and "↪" not in shown, shown
    _lab.shot(page, screenshots, "workshop-m0-correct", cell)
    page.problems.check()
    print(f"workshop M0 (learner edition): all cells ran in {seconds:.0f} s; wrong answer -> hint, right -> ✓")
