"""Notebook hygiene: outputs stripped, one `parameters` cell, every parameter type-annotated with a
help comment that papermill can read."""
import ast
from pathlib import Path

import nbformat
import papermill
import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped_and_parameters_are_typed_with_help(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks with outputs stripped"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    lines = params[0].source.splitlines()
    names = []
    for node in ast.parse(params[0].source).body:
        assert isinstance(node, ast.AnnAssign), f"line {node.lineno}: parameters need a type annotation"
        assert "  # " in lines[node.lineno - 1], f"line {node.lineno}: add a trailing '# help' comment"
        names.append(node.target.id)
    inspected = papermill.inspect_notebook(str(path))
    assert list(inspected) == names  # papermill parses every line (no '=' inside help comments)
    assert all(p["help"] and p["inferred_type_name"] != "None" for p in inspected.values())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_names_the_projects_kernel(path):
    """`make setup` registers this kernel (`ipykernel install --sys-prefix --name clip-lab`); JupyterLab
    opens the notebooks with it."""
    spec = nbformat.read(path, as_version=4).metadata["kernelspec"]
    assert spec["name"] == "clip-lab" and spec["display_name"] == "CLIP Lab (Python 3)"
