"""The layers hold: `lint-imports` checks the import contracts in pyproject.toml (front end > dist |
training > studies > data > core, studies on the shared ones only, lab never imports figures or
widgets; docs/ARCHITECTURE.md), and a wrong-way import makes it fail. No two of lab's modules import
each other, directly or through a chain (a layer contract lets modules of one folder, or of one layer,
import each other both ways; grimp's graph has every import, those inside functions too). A moved
module still imports from its old path, with a DeprecationWarning (lab/_moved.py).

    python -m pytest -q tests/test_architecture.py
"""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

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


# -- import cycles ---------------------------------------------------------------------------------

def import_cycles(graph) -> list[str]:
    """Every group of modules that import each other (directly, or through a chain of imports), as
    one cycle through it with the line of each import: "a -> b -> a (a:3 from . import b; b:7 ...)"."""
    found, seen = [], set()
    for module in sorted(graph.modules):
        if module in seen:
            continue
        group = graph.find_upstream_modules(module) & graph.find_downstream_modules(module)  # imports it and is imported by it
        if not group:
            continue
        seen |= group | {module}
        first = min(m for m in graph.find_modules_directly_imported_by(module) if m in group)
        cycle = [module, *graph.find_shortest_chain(importer=first, imported=module)]
        lines = []
        for importer, imported in zip(cycle, cycle[1:]):
            for d in graph.get_import_details(importer=importer, imported=imported)[:1]:
                lines.append(f"{importer}:{d['line_number']} {d['line_contents']}")
        found.append(" -> ".join(cycle) + (f" ({'; '.join(lines)})" if lines else ""))
    return found


def test_no_module_of_lab_imports_itself_through_others():
    assert Path(importlib.util.find_spec("lab").origin) == ROOT / "lab" / "__init__.py"  # this tree, not an installed copy
    graph = grimp.build_graph("lab", cache_dir=None)
    assert "lab.core.encoding" in graph.modules
    cycles = import_cycles(graph)
    assert not cycles, "import cycles in lab (put the shared piece in a module both import):\n" + "\n".join(cycles)


def test_a_cycle_is_found_and_named():
    graph = grimp.ImportGraph()
    for importer, imported, line in [("p.core.a", "p.core.b", 3), ("p.core.b", "p.core.c", 5), ("p.core.c", "p.core.a", 9),
                                     ("p.top", "p.core.a", 1), ("p.x", "p.y", 2), ("p.y", "p.x", 4)]:
        graph.add_import(importer=importer, imported=imported, line_number=line, line_contents=f"import {imported}")
    assert import_cycles(graph) == [
        "p.core.a -> p.core.b -> p.core.c -> p.core.a (p.core.a:3 import p.core.b; p.core.b:5 import p.core.c; "
        "p.core.c:9 import p.core.a)",
        "p.x -> p.y -> p.x (p.x:2 import p.y; p.y:4 import p.x)"]


# -- moved modules ---------------------------------------------------------------------------------

def test_the_baseline_cnns_import_from_their_old_path_with_a_warning():
    code = """if True:
        import warnings
        import lab.studies.baselines as new
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import lab.training.supervised as old
            from lab.training import supervised
        print(old is new and supervised is new and old.train_cnn is new.train_cnn)
        print(sorted({str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)}))
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    same, messages = result.stdout.splitlines()[-2:]
    assert same == "True"
    assert "lab.training.supervised moved to lab.studies.baselines" in messages, messages
