"""The four study notebooks run from JupyterLab in a real browser (Run > Run All Cells), on smaller
parameters (_jupyter.SMALL), saved with Ctrl+S; then the saved notebook and the page are checked:
every cell ran, no error output, its figures are there, no widget placeholders or errors, no stack
trace and no uncaught page errors."""
import pytest

from . import _lab
from ._jupyter import SMALL


@pytest.mark.parametrize("stem", list(SMALL))
def test_study_notebook_runs_clean_in_jupyterlab(page, lab_server, screenshots, stem):
    _lab.open_notebook(page, lab_server, f"{stem}.ipynb")
    seconds = _lab.run_all(page, timeout=300)
    nb = _lab.save(page, lab_server.root / f"{stem}.ipynb")
    assert not _lab.error_outputs(nb), _lab.error_outputs(nb)
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code"), "a cell did not run"
    figures = _lab.plotly_outputs(nb)
    assert figures >= 3
    _lab.shot(page, screenshots, f"{stem}-end")
    _lab.cell_output(page, 2).scroll_into_view_if_needed()
    _lab.shot(page, screenshots, f"{stem}-first-figures")
    _lab.check_no_widget_trouble(page)
    page.problems.check()
    print(f"{stem}: all cells ran in {seconds:.0f} s, {figures} figures")
