"""nbgrader compatibility of the workshop's source notebooks: nbgrader's cell metadata on every code
cell that holds a solution, so `nbgrader generate_assignment` accepts the sources as they are.

The sources mark solutions with nbgrader's own `### BEGIN SOLUTION` / `### END SOLUTION`; nbgrader
also wants each such cell marked as a solution cell (else "Solution region detected in a non-solution
cell"). `sync` derives that metadata from the markers (idempotent: a synced notebook is unchanged);
the lab's own build (lab.workshop.build) stays the default and ignores it.

    python -m lab.workshop.nbgrader               # are notebooks/workshop/*.ipynb in sync? (exit 1 if not)
    python -m lab.workshop.nbgrader --write       # add / refresh the metadata in place
    python -m lab.workshop.nbgrader --course DIR  # an nbgrader course folder: one assignment per module
    cd DIR && nbgrader generate_assignment m1_zeroshot   # -> release/m1_zeroshot/m1_zeroshot.ipynb
    cd DIR && nbgrader generate_assignment "*"           # every module at once
(nbgrader runs `alembic` from PATH: activate the environment, or put its bin/ on PATH.)

grade_id is the cell's exercise or question name ("m1.logits" -> "m1-logits", nbgrader allows
[A-Za-z0-9_-]), else the module and section; repeats get "-2", "-3". The course's nbgrader_config.py
sets the lab's stub, so a function body becomes `raise NotImplementedError()` as in the lab's build
(a top-level multiple-choice answer gets the stub too: nbgrader has no "drop the block").
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import nbformat

from . import source as src
from .build import BEGIN, END, STUB

__all__ = ["SCHEMA_VERSION", "CONFIG", "has_solution", "grade_ids", "sync", "in_sync", "out_of_sync", "write",
           "course", "main"]

SCHEMA_VERSION = 3  # nbgrader 0.6 - 0.9's cell metadata schema
CONFIG = f"""# nbgrader configuration for the CLIP Lab workshop (written by python -m lab.workshop.nbgrader --course)
c = get_config()  # noqa: F821
c.ClearSolutions.code_stub = {{"python": {STUB!r}}}
"""


def has_solution(cell) -> bool:
    return cell.cell_type == "code" and any(line.strip() in (BEGIN, END) for line in cell.source.splitlines())


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-").lower() or "cell"


def grade_ids(nb) -> list[str | None]:
    """One grade_id per cell (None for cells without a solution), unique in the notebook."""
    module = _slug(nb.metadata.get("workshop", {}).get("module", "workshop"))
    ids, seen, prompt, section = [], {}, None, "start"
    for cell in nb.cells:
        m = src.meta(cell)
        if "section" in m:
            prompt, section = None, m["section"]
        prompt = next((m[k] for k in ("exercise", "question") if k in m), prompt)
        if not has_solution(cell):
            ids.append(None)
            continue
        base = _slug(prompt) if prompt else f"{module}-{_slug(section)}"
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return ids


def sync(nb):
    """Give every solution cell nbgrader's solution-cell metadata and take it off every other cell
    (in place) -> the notebook."""
    for cell, grade_id in zip(nb.cells, grade_ids(nb)):
        if grade_id is None:
            cell.metadata.pop("nbgrader", None)
        else:
            cell.metadata["nbgrader"] = {"grade": False, "grade_id": grade_id, "locked": False,
                                         "schema_version": SCHEMA_VERSION, "solution": True}
    return nb


def in_sync(nb) -> bool:
    copy = nbformat.from_dict(json.loads(json.dumps(nb)))
    return sync(copy) == nb


def _notebooks(folder) -> list[Path]:
    return sorted(Path(folder or src.SOURCE).glob("*.ipynb"))


def out_of_sync(folder: str | Path | None = None) -> list[str]:
    """File names of the source notebooks whose nbgrader metadata `sync` would change."""
    return [p.name for p in _notebooks(folder) if not in_sync(nbformat.read(p, as_version=4))]


def write(folder: str | Path | None = None) -> list[str]:
    """Sync the source notebooks in place -> the names of those that changed."""
    changed = out_of_sync(folder)
    for path in _notebooks(folder):
        if path.name in changed:
            nbformat.write(sync(nbformat.read(path, as_version=4)), path)
    return changed


def course(root: str | Path, folder: str | Path | None = None, synced: bool = True) -> list[str]:
    """An nbgrader course folder: nbgrader_config.py and source/<stem>/<stem>.ipynb per module
    (synced copies, or the files as they are with synced=False) -> the assignment names."""
    root = Path(root)
    (root / "source").mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(CONFIG)
    names = []
    for module in src.load(folder).modules:
        target = root / "source" / module.path.stem
        target.mkdir(exist_ok=True)
        if synced:
            nbformat.write(sync(nbformat.read(module.path, as_version=4)), target / module.path.name)
        else:
            shutil.copyfile(module.path, target / module.path.name)
        names.append(module.path.stem)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.workshop.nbgrader", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write the metadata into the source notebooks")
    parser.add_argument("--course", help="lay out an nbgrader course folder here")
    parser.add_argument("--source", help="the workshop source folder (default notebooks/workshop)")
    args = parser.parse_args(argv)
    if args.course:
        names = course(args.course, args.source)
        print(f"{args.course}: assignments {' '.join(names)}; cd there and run nbgrader generate_assignment NAME")
        return 0
    if args.write:
        changed = write(args.source)
        print("synced: " + (", ".join(changed) if changed else "nothing to change"))
        return 0
    stale = out_of_sync(args.source)
    print("nbgrader metadata: " + (f"out of sync in {', '.join(stale)} (run with --write)" if stale else "in sync"))
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
