"""The workshop's other editions: the facilitator guide, the handout's think questions, the review
site (the executed solutions with their figures, offline) and nbgrader-compatible sources, checked
with nbgrader itself (`nbgrader generate_assignment` in a temporary course folder, offline).

    .venv/bin/python -m pytest -q tests/workshop/test_editions.py

The build test runs a one-module workshop written here (seconds), not the real modules
(tests/workshop/test_workshop.py builds those).
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lab.errors import BadInput
from lab.workshop import build as wb
from lab.workshop import checks, guide
from lab.workshop import nbgrader as ng
from lab.workshop import source as src

REMOTE = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?(https?:)?//"""
                    r"""|@import|url\(\s*["']?https?:""", re.I)


def _copy(nb):
    return nbformat.from_dict(json.loads(json.dumps(nb)))


def _solution_lines(nb) -> set:
    return {ln.strip() for c in nb.cells if c.cell_type == "code" for ln in wb.solution_lines(c.source)
            if len(ln.strip()) >= 12}


# -- nbgrader ---------------------------------------------------------------------------------------

def test_sync_marks_exactly_the_solution_cells_and_is_idempotent():
    from nbgrader.nbgraderformat import MetadataValidator
    for module in src.load().modules:
        nb = ng.sync(_copy(module.notebook))
        marked = [c for c in nb.cells if "nbgrader" in c.metadata]
        assert marked and all(ng.has_solution(c) for c in marked)
        assert len(marked) == sum(ng.has_solution(c) for c in nb.cells)
        ids = [c.metadata["nbgrader"]["grade_id"] for c in marked]
        assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in ids), ids
        assert all(c.metadata["nbgrader"]["solution"] and not c.metadata["nbgrader"]["grade"] for c in marked)
        MetadataValidator().validate_nb(nb)  # nbgrader's own schema and rules
        assert ng.in_sync(nb) and ng.sync(_copy(nb)) == nb
        student = wb.student_edition(nb, module.path.stem)  # the lab's editions carry no nbgrader metadata
        assert not any("nbgrader" in c.metadata for c in student.cells)


def test_sync_takes_stale_metadata_off_and_names_cells_without_a_prompt():
    nb = nbformat.v4.new_notebook(metadata={"workshop": {"module": "M7", "title": "t"}})
    nb.cells = [nbformat.v4.new_markdown_cell("## A b", metadata={"workshop": {"section": "A b", "minutes": 1}}),
                nbformat.v4.new_code_cell("x = 1\n### BEGIN SOLUTION\nx = 2\n### END SOLUTION"),
                nbformat.v4.new_code_cell("y = 1\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION"),
                nbformat.v4.new_code_cell("z = 1", metadata={"nbgrader": {"solution": True, "grade_id": "old"}})]
    ng.sync(nb)
    assert [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells] == [None, "m7-a-b", "m7-a-b-2", None]


def test_committed_sources_are_in_sync():
    assert not ng.out_of_sync(), "run: python -m lab.workshop.nbgrader --write"


def test_nbgrader_generate_assignment_passes_on_every_module(tmp_path):
    """The committed source notebooks, as they are, through nbgrader's own command (it exits non-zero
    when any assignment fails)."""
    names = ng.course(tmp_path, synced=False)
    assert names == [m.path.stem for m in src.load().modules]
    bin_dir = str(Path(sys.executable).parent)  # nbgrader runs `alembic` from PATH
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    run = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "*"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)  # "*": every assignment, one nbgrader start
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for module in src.load().modules:
        name = module.path.stem
        released = nbformat.read(tmp_path / "release" / name / f"{name}.ipynb", as_version=4)
        code = "\n".join(c.source for c in released.cells if c.cell_type == "code")
        leaked = [ln for ln in _solution_lines(module.notebook) if ln in code]
        assert not leaked and "SOLUTION" not in code, (name, leaked)
        assert wb.STUB in code  # the course config gives nbgrader the lab's stub


# -- handout and guide (from the source) -------------------------------------------------------------

def test_handout_has_every_exercise_think_question_and_discussion_prompt():
    workshop = src.load()
    handout = wb.handout_markdown(workshop)
    for module in workshop.modules:
        for kind in src.PROMPTS:
            for name, _, cell in module.prompts(kind):
                first = " ".join(cell.source.strip().splitlines()[1].split())[:40]
                assert name in handout and first in handout, (kind, name)
        assert module.prompts("question")
    assert "my_answer" not in handout


def test_guide_names_each_exercises_mistakes_answers_and_compute_times():
    workshop = src.load()
    text = guide.guide_markdown(workshop)
    timings = wb.read_timings(workshop.folder)
    for module in workshop.modules:
        part = text.split(f"## {module.name} · ")[1].split("\n## ")[0]
        info = module.info
        for key in ("objectives", "keypoints"):
            items = info.get(key) or []
            assert all(" ".join(x.split()) in part for x in items) and (items or f"workshop.{key}" in part)
        assert (info.get("behind") and " ".join(info["behind"].split()) in part) or "workshop.behind" in part
        for name, _, _ in module.prompts("exercise"):
            assert name in part
            if name in checks.EXERCISES:
                assert all(" ".join(h.split()).replace("|", "\\|") in part for h in checks.EXERCISES[name].mistakes)
        for name, _, cell in module.prompts("question"):
            letter = re.search(rf"\*\*{re.escape(name)}\*\* \(answer ([a-d])\)", part).group(1)
            assert checks.answer(name, letter).status == "correct"
        for s in module.sections:
            row = next(ln for ln in part.splitlines() if ln.startswith("| ") and f"| {s.title} |" in ln)
            seconds = timings.get(module.path.stem, {}).get(s.title)
            assert (seconds is None and "missing" in row) or (seconds is not None and " s |" in row)


def _tiny_workshop(folder: Path, with_meta: bool) -> Path:
    """A one-module workshop: an exercise with a solution, a think question, a discussion prompt and
    a plotly figure; with_meta adds the guide's notebook metadata and the minutes' split."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "workshop.yaml").write_text("title: Tiny\nminutes: 20\nagenda:\n  - module: t1.ipynb\n"
                                          "  - break: {title: 'Wrap-up', minutes: 5}\n")
    section = {"section": "Logits", "minutes": 15, "kind": "core"}
    info = {"module": "M1", "title": "Tiny module"}
    if with_meta:
        section.update(teaching=6, exercises=9)
        info.update(objectives=["Compute scaled similarities"], keypoints=["Logits are cosines times 1/τ"],
                    behind="Skip the figure; live-code the exercise.")
    nb = nbformat.v4.new_notebook(metadata={"workshop": info})
    nb.cells = [
        nbformat.v4.new_markdown_cell("# M1 · Tiny"),
        nbformat.v4.new_markdown_cell("**Instructor:** go slowly.", metadata={"tags": ["instructor"]}),
        nbformat.v4.new_markdown_cell("## Logits", metadata={"workshop": section}),
        nbformat.v4.new_markdown_cell("### Exercise m1.logits · scaled\nWrite `logits(x, w, s)`.",
                                      metadata={"workshop": {"exercise": "m1.logits"}}),
        nbformat.v4.new_code_cell("def logits(x, w, s):\n    ### BEGIN SOLUTION\n"
                                  "    return s * x @ w.T  # the solution\n    ### END SOLUTION\nprint('defined')"),
        nbformat.v4.new_markdown_cell("### Think · m1.q1\nWhich is it?\n\na) one b) two\n\nSet `my_answer`.",
                                      metadata={"workshop": {"question": "m1.q1"}}),
        nbformat.v4.new_code_cell('my_answer = ""\n### BEGIN SOLUTION\nmy_answer = "b"\n### END SOLUTION'),
        nbformat.v4.new_markdown_cell("### Discuss · m1.d1\nWhen would a template hurt?",
                                      metadata={"workshop": {"discussion": "m1.d1"}}),
        nbformat.v4.new_code_cell("import plotly.graph_objects as go\n"
                                  "go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2]), layout_title_text='a fig').show()"),
    ]
    nbformat.write(ng.sync(nb), folder / "t1.ipynb")
    return folder


def test_guide_says_missing_instead_of_inventing(tmp_path):
    bare = src.load(_tiny_workshop(tmp_path / "bare", with_meta=False))
    text = guide.guide_markdown(bare, timings={})
    for key in ("objectives", "keypoints", "behind"):
        assert f"{guide.MISSING} (notebook metadata workshop.{key})" in text
    assert f"teaching / exercises {guide.MISSING}" in text and "build with --record-timings" in text
    full = src.load(_tiny_workshop(tmp_path / "full", with_meta=True))
    text = guide.guide_markdown(full, timings={"t1": {"Logits": 2.4}})
    assert "- Compute scaled similarities" in text and "- Logits are cosines times 1/τ" in text
    assert "Skip the figure; live-code the exercise." in text and "teaching 6 · exercises 9 min" in text
    assert "| 0:00 | Logits | core | 15 | 6 | 9 | 2 s |" in text
    assert "**m1.d1**: When would a template hurt?" in text and "**m1.q1** (answer b)" in text
    assert "- go slowly." in text and "missing logit scale" in text
    assert guide.MISSING not in text.split("**Discussion prompts**")[0].split("**Keypoints**")[1]


def test_a_section_split_that_does_not_add_up_is_refused(tmp_path):
    folder = _tiny_workshop(tmp_path, with_meta=True)
    nb = nbformat.read(folder / "t1.ipynb", as_version=4)
    nb.cells[2].metadata["workshop"]["exercises"] = 3
    nbformat.write(nb, folder / "t1.ipynb")
    with pytest.raises(BadInput, match="teaching \\+ exercises"):
        src.load(folder)


# -- the build: review site and guide, offline and deterministic ---------------------------------------

def test_build_writes_the_guide_and_an_offline_review_site_deterministically(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    folder = _tiny_workshop(tmp_path / "src", with_meta=True)
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        wb.build(out, folder=folder, progress=False)
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*") if p.is_file())
    assert [str(f) for f in files if (outs[0] / f).read_bytes() != (outs[1] / f).read_bytes()] == []
    out = outs[0]
    handout = (out / "handout.md").read_text()
    assert "**Think · m1.q1**" in handout and "Which is it?" in handout and "m1.d1" in handout
    assert "my_answer" not in handout and "the solution" not in handout
    text = (out / "guide.md").read_text()
    assert "(answer b)" in text and "Compute scaled similarities" in text
    assert "<table>" in (out / "guide.html").read_text()
    review = out / "review"
    page = (review / "t1.html").read_text()
    assert "the solution" in page and page.count('class="lab-figure"') == 1 and "Plotly.newPlot" in page
    assert '<script src="plotly.min.js"></script>' in page and (review / "plotly.min.js").stat().st_size > 10 ** 6
    assert {"index.html", "handout.html", "t1.html", "t1.ipynb"} <= {p.name for p in review.iterdir()}
    for path in review.glob("*.html"):
        assert not REMOTE.search(path.read_text()), path.name
    student_page = (out / "site" / "t1.html").read_text()  # the day's site: no solutions, no figures
    assert "the solution" not in student_page and not (out / "site" / "plotly.min.js").exists()
    assert not any("nbgrader" in c.metadata for c in nbformat.read(out / "student" / "t1.ipynb", 4).cells)
