"""lab/_imports.py: `import lab` keeps jsonschema's optional iri parser out of the process (a
second of CPU in every kernel), and notebooks still validate."""
import subprocess
import sys

CODE = ("import lab, sys, nbformat, jsonschema; "
        "nbformat.validate(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('1')])); "
        "print(sys.modules.get('rfc3987_syntax') is not None)")


def run(env_extra: dict) -> str:
    import os
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True,
                         env={**os.environ, **env_extra})
    return out.stdout.strip()


def test_import_lab_skips_the_iri_parser_and_notebooks_still_validate():
    assert run({}) == "False"
    assert run({"LAB_KEEP_RFC3987": "1"}) == "True"  # the opt-out keeps it (it is installed here)
