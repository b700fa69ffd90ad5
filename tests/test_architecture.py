"""The layers hold: `lint-imports` checks the import contracts in pyproject.toml (front end > dist |
training > studies > baseline CNNs > data > core, studies on the shared ones only, lab never imports
figures or widgets; docs/ARCHITECTURE.md), and a wrong-way import makes it fail.

    python -m pytest -q tests/test_architecture.py
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """lint-imports on the packages under `root` (not an installed copy of lab)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_wrong_way_import_breaks_the_layers(tmp_path):
    for package in ("lab", "figures", "widgets"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pt", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with open(tmp_path / "lab" / "data" / "folder.py", "a") as f:
        f.write("\nfrom ..studies import zeroshot  # data must not import a study\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "lab.data.folder -> lab.studies.zeroshot" in result.stdout, result.stdout
