"""Build the workshop's editions from its one source.

    python -m lab workshop build --out build/workshop [--modules M1 M2] [--record-timings]

writes
    student/      learner notebooks: solutions replaced by stubs, instructor notes removed, no outputs
    solutions/    the solutions, executed (nbclient, in this interpreter's kernel)
    instructor/   the solutions with instructor notes and "time from start" banners that give each
                  section's minutes and its measured compute time
    handout.md / handout.html   one page: the agenda, every exercise's prompt, think question and
                  discussion prompt
    guide.md / guide.html       the facilitator guide (lab.workshop.guide): objectives, minutes,
                  named mistakes, answers, what to skip when behind (not for learners)
    site/         static HTML of the learner edition + handout + agenda; opens offline
    review/       the same site for after the day: the executed solutions, figures drawn by a local
                  plotly.min.js (opens offline); solutions included, so it is published after the day
Builds are deterministic: execution timestamps and random ids (plotly divs, widget models, cell
ids) are removed or replaced by stable ones, and the banners' compute times come from the
committed notebooks/workshop/timings.json (`--record-timings` folds this build's times in, keeping
each section's best: delete the file to start afresh after a notebook gets slower).
"""
from __future__ import annotations

import datetime as dt
import html
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import nbformat

from ..errors import LabError
from . import source as src
from .guide import guide_markdown
from .source import BEGIN, END, TIMINGS, read_timings, solution_lines  # the source's markers and timings file

__all__ = ["STUB", "TIMINGS", "PLOTLY", "strip_solutions", "solution_lines", "remove_markers", "student_edition",
           "solution_source", "execute", "sanitize", "errors_in", "section_seconds", "instructor_edition",
           "solutions_edition", "static_outputs", "handout_markdown", "notebook_html", "write_site", "read_timings",
           "build"]

STUB = "raise NotImplementedError()  # your code here"
PLOTLY = "application/vnd.plotly.v1+json"
WIDGET = "application/vnd.jupyter.widget-view+json"
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b|\b[0-9a-f]{32}\b"
                   r"|(?<=\bT_)[0-9a-f]{5}(?=[_\"\\\s])"  # uuid4s (plotly divs), widget model ids, pandas Styler ids
                   r"|(?<= at 0x)[0-9a-f]{6,16}\b")  # object addresses in reprs


# -- editions of one notebook ---------------------------------------------------------------------

def strip_solutions(code: str) -> str:
    """Replace every BEGIN/END SOLUTION block: inside a function by a NotImplementedError stub at the
    block's indentation, at top level (a multiple-choice answer) by nothing."""
    out, inside = [], False
    for line in code.splitlines():
        if line.strip() == BEGIN:
            inside = True
            indent = line[:len(line) - len(line.lstrip())]
            if indent:
                out.append(indent + STUB)
        elif line.strip() == END:
            if not inside:
                raise LabError(f"{END} without {BEGIN} in:\n{code}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise LabError(f"{BEGIN} without {END} in:\n{code}")
    return "\n".join(out)


def remove_markers(code: str) -> str:
    return "\n".join(line for line in code.splitlines() if line.strip() not in (BEGIN, END))


def _fresh(nb, stem: str):
    """A copy with stable cell ids, no outputs and no nbgrader metadata (the lab's editions are not nbgrader's)."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.nbformat, nb.nbformat_minor = 4, 5
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{stem}-{i:02d}"
        cell.metadata.pop("nbgrader", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def student_edition(nb, stem: str):
    nb = _fresh(nb, stem)
    nb.cells = [c for c in nb.cells if not src.is_instructor(c)]
    for c in nb.cells:
        if c.cell_type == "code":
            c.source = strip_solutions(c.source)
    return nb


def solution_source(nb, stem: str):
    """Markers removed, instructor notes kept (they are markdown; the solutions drop them later)."""
    nb = _fresh(nb, stem)
    for c in nb.cells:
        if c.cell_type == "code":
            c.source = remove_markers(c.source)
    return nb


# -- execution ------------------------------------------------------------------------------------

def execute(nb, cwd: Path, kernel: str, timeout: int = 300, allow_errors: bool = False):
    """Run a notebook in place with nbclient -> seconds per cell (None for markdown). The kernel
    talks over IPC sockets in a private folder: no TCP ports to race for on a shared machine."""
    from nbclient import NotebookClient
    from traitlets.config import Config
    with tempfile.TemporaryDirectory() as sockets:
        config = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "kernel")}})
        client = NotebookClient(nb, kernel_name=kernel, timeout=timeout, allow_errors=allow_errors, config=config,
                                resources={"metadata": {"path": str(cwd)}}, record_timing=True)
        client.execute()
    seconds = []
    for cell in nb.cells:
        ex = cell.metadata.get("execution", {})
        start, end = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
        seconds.append((dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
                        - dt.datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()
                       if start and end else None)
    return seconds


def sanitize(nb):
    """Remove what changes from run to run: timing metadata, widget state, random ids in outputs."""
    nb.metadata.pop("widgets", None)
    nb.metadata.pop("papermill", None)
    ids: dict[str, str] = {}
    stable = lambda m: ids.setdefault(m.group(0), f"{len(ids):032x}")  # noqa: E731
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        text = json.dumps(_coalesce(cell.outputs), sort_keys=True)
        cell.outputs = nbformat.from_dict(json.loads(_UUID.sub(stable, text)))
    return nb


def _coalesce(outputs) -> list:
    """Consecutive stream outputs of one stream as one (how output is chunked depends on timing)."""
    merged = []
    for o in outputs:
        if o.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream" \
                and merged[-1].get("name") == o.get("name"):
            merged[-1] = {**merged[-1], "text": merged[-1]["text"] + o["text"]}
        else:
            merged.append(o)
    return merged


def errors_in(nb) -> list[str]:
    return [f"cell {i}: {o.get('ename')}: {o.get('evalue')}" for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for o in c.outputs if o.get("output_type") == "error"]


def section_seconds(nb, seconds: list) -> dict[str, float]:
    """Compute seconds per section (cells before the first section count towards it)."""
    out, current = {}, None
    first = next((src.meta(c)["section"] for c in nb.cells if "section" in src.meta(c)), "")
    for cell, s in zip(nb.cells, seconds):
        current = src.meta(cell).get("section", current)
        key = current or first
        out[key] = out.get(key, 0.0) + (s or 0.0)
    return out


# -- instructor banners ---------------------------------------------------------------------------

def _hm(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}"


def _compute(seconds) -> str:
    if seconds is None:
        return "compute time not measured yet (build with --record-timings)"
    return f"measured compute {'< 1 s' if seconds < 1 else f'≈ {round(seconds)} s'}"


def instructor_edition(executed, module: src.Module, offsets: dict, timings: dict):
    nb = _fresh(executed, module.path.stem + "-i")
    for cell, old in zip(nb.cells, executed.cells):  # keep the outputs
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = old.outputs, old.execution_count
    cells = []
    for cell in nb.cells:
        m = src.meta(cell)
        if "section" in m:
            t = offsets[(module.name, m["section"])]
            measured = timings.get(module.path.stem, {}).get(m["section"])
            banner = nbformat.v4.new_markdown_cell(
                f"> ⏱ **{_hm(t)} from start** · this section {m['minutes']} min ({m['kind']}) · "
                f"{_compute(measured)}")
            banner.metadata["tags"] = ["instructor", "timing"]
            banner["id"] = f"{cell['id']}-t"
            cells.append(banner)
        cells.append(cell)
    nb.cells = cells
    return nb


def solutions_edition(executed, stem: str):
    nb = _fresh(executed, stem)
    for cell, old in zip(nb.cells, executed.cells):
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = old.outputs, old.execution_count
    nb.cells = [c for c in nb.cells if not src.is_instructor(c)]
    return nb


def static_outputs(executed, stem: str):
    """A copy for a static page: each plotly figure also as HTML drawn by plotly.min.js (nbconvert
    drops plotly's own mimetype), each widget as a note (it needs a live kernel)."""
    nb = nbformat.from_dict(json.loads(json.dumps(executed)))
    n = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if PLOTLY in data:
                n += 1
                spec = json.dumps({"data": data[PLOTLY].get("data", []), "layout": data[PLOTLY].get("layout", {}),
                                   "config": {"displaylogo": False, "responsive": True}},
                                  sort_keys=True, separators=(",", ":")).replace("</", "<\\/")
                div = f"{stem}-fig{n}"
                data["text/html"] = (f'<div id="{div}" class="lab-figure"></div><script>(function(f){{Plotly.newPlot('
                                     f'"{div}",f.data,f.layout,f.config)}})({spec});</script>')
            elif WIDGET in data:
                out.data = {"text/html": "<p><em>An interactive widget: open the notebook in Jupyter and run it "
                                         "to use it.</em></p>", "text/plain": "(interactive widget)"}
    return nb


# -- handout and site -----------------------------------------------------------------------------

def _prompt_line(cell, bonus: bool) -> str:
    title, _, body = re.sub(r"^#+\s*", "", cell.source.strip()).partition("\n")
    body = " ".join(ln for ln in body.splitlines() if "my_answer" not in ln)  # not the notebook's instruction
    return f"**{title.replace('Exercise ', '')}**{' (bonus)' if bonus else ''}: {' '.join(body.split())}"


def handout_markdown(workshop: src.Workshop) -> str:
    """One page: the day in one line per module and break, then every exercise's prompt, think
    question and discussion prompt, in the notebook's order."""
    t, day = 0, []
    for item in workshop.items:
        name = f"{item.name} {item.title}" if isinstance(item, src.Module) else item.title.split(":")[0]
        day.append(f"{_hm(t)} {name} ({item.minutes} min)")
        t += item.minutes
    lines = [f"# {workshop.title}", "", " · ".join(day)]
    for module in workshop.modules:
        lines += ["", f"## {module.name} · {module.title} — `{module.path.stem}.ipynb`", ""]
        prompts = [p for kind in src.PROMPTS for p in module.prompts(kind)]
        order = {id(c): i for i, c in enumerate(module.notebook.cells)}
        for _, kind, cell in sorted(prompts, key=lambda p: order[id(p[2])]):
            lines += [_prompt_line(cell, kind == "bonus"), ""]
    return "\n".join(lines) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.45}
pre,code{background:#f5f5f5;font-size:.92em} pre{padding:.6em;overflow-x:auto} table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.25em .6em} .jp-InputPrompt,.jp-OutputPrompt{display:none}
.jp-Cell{margin:.6em 0} nav a{margin-right:1em} @media print{body{font-size:9.5pt;margin:0} nav{display:none}}"""


def _page(title: str, body: str, nav: str = "", head: str = "") -> str:
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style>{head}</head><body><nav>{nav}</nav>{body}</body></html>\n")


def _markdown_html(text: str) -> str:
    import mistune
    return mistune.html(text)


def notebook_html(nb) -> str:
    """The notebook as an HTML fragment without scripts or external links (nbconvert's basic template)."""
    from nbconvert import HTMLExporter
    exporter = HTMLExporter(template_name="basic")
    body, _ = exporter.from_notebook_node(nb)
    return body


def _bonus_tag(row: dict) -> str:
    return f" <em>(bonus, beside {html.escape(row['beside'])})</em>" if row["kind"] == "bonus" else ""


def write_site(out: Path, workshop: src.Workshop, students: dict, handout: str, folder: str = "site",
               intro: str = ""):
    """out/<folder>/: index (modules and agenda), handout and one page + notebook per module
    (`students`: stem -> (module, notebook)); figures drawn by a plotly.min.js copied beside them."""
    site = out / folder
    site.mkdir(parents=True)
    figures = any(PLOTLY in o.get("data", {}) for _, nb in students.values() for c in nb.cells
                  for o in c.get("outputs", []))
    head = '<script src="plotly.min.js"></script>' if figures else ""
    if figures:
        from plotly.offline import get_plotlyjs
        (site / "plotly.min.js").write_text(get_plotlyjs(), encoding="utf-8")
    nav = '<a href="index.html">agenda</a><a href="handout.html">handout</a>' + "".join(
        f'<a href="{stem}.html">{html.escape(m.name)}</a>' for stem, (m, _) in students.items())
    rows = "".join(f"<tr><td>{_hm(r['offset'])}</td><td>{r['minutes']}</td><td>{html.escape(r['title'])}"
                   f"{_bonus_tag(r)}</td></tr>" for r in src.schedule(workshop))
    mods = "".join(f'<li><a href="{stem}.html">{html.escape(m.name)} · {html.escape(m.title)}</a> '
                   f'({m.minutes} min) · <a href="{stem}.ipynb">download the notebook</a></li>'
                   for stem, (m, _) in students.items())
    index = (f"<h1>{html.escape(workshop.title)}</h1>{intro}<ul>{mods}</ul>"
             f"<table><tr><th>from start</th><th>min</th><th></th></tr>{rows}</table>")
    (site / "index.html").write_text(_page(workshop.title, index, nav), encoding="utf-8")
    (site / "handout.html").write_text(_page("Handout", _markdown_html(handout), nav), encoding="utf-8")
    for stem, (module, nb) in students.items():
        page = intro + notebook_html(static_outputs(nb, stem))
        (site / f"{stem}.html").write_text(_page(f"{module.name} · {module.title}", page, nav, head), encoding="utf-8")
        nbformat.write(nb, site / f"{stem}.ipynb")


# -- the build ------------------------------------------------------------------------------------

REVIEW_NOTE = ("<p><em>Review edition, for after the day: the reference solutions with their outputs. "
               "Try each exercise in the learner notebook before you read its solution.</em></p>")


def build(out: str | Path = "build/workshop", modules: list[str] | None = None, execute_solutions: bool = True,
          record_timings: bool = False, folder: str | Path | None = None, progress: bool = True) -> dict:
    """Write every edition under `out` (replacing it) -> {module stem: measured seconds per section}."""
    from ..report import this_python_kernel
    workshop = src.load(folder, modules)
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    for part in ("student", "solutions", "instructor"):
        (out / part).mkdir(parents=True)
    offsets = {(r["module"], r["section"]): r["offset"] for r in src.schedule(workshop) if r["module"]}
    recorded = read_timings(workshop.folder)
    measured, students, reviews = {}, {}, {}
    root = Path(__file__).resolve().parent.parent.parent  # notebooks import lab, figures and widgets from here
    before = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"  # progress bars would put timings into the outputs
    try:
        with this_python_kernel() as kernel:
            for module in workshop.modules:
                stem = module.path.stem
                student = student_edition(module.notebook, stem)
                nbformat.write(student, out / "student" / f"{stem}.ipynb")
                students[stem] = (module, student)
                if not execute_solutions:
                    continue
                executed = solution_source(module.notebook, stem)
                start = time.perf_counter()
                if progress:
                    print(f"{module.name} {stem}: executing the solutions", flush=True)
                seconds = execute(executed, root, kernel, allow_errors=True)
                problems = errors_in(executed)
                if problems:
                    raise LabError(f"{stem}: the solutions fail to run: " + "; ".join(problems))
                measured[stem] = {k: round(v, 1) for k, v in section_seconds(executed, seconds).items()}
                if progress:
                    print(f"{module.name} {stem}: {time.perf_counter() - start:.1f} s "
                          f"(cells {sum(s or 0 for s in seconds):.1f} s)", flush=True)
                sanitize(executed)
                solutions = solutions_edition(executed, stem)
                nbformat.write(solutions, out / "solutions" / f"{stem}.ipynb")
                reviews[stem] = (module, solutions)
                if record_timings:  # best of the recorded runs: a busy machine only ever slows a run down
                    old = recorded.get(stem, {})
                    recorded[stem] = {k: min(v, old.get(k, v)) for k, v in measured[stem].items()}
                nbformat.write(instructor_edition(executed, module, offsets, recorded), out / "instructor" / f"{stem}.ipynb")
    finally:
        if before is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = before
    handout = handout_markdown(workshop)
    (out / "handout.md").write_text(handout, encoding="utf-8")
    (out / "handout.html").write_text(_page("Handout", _markdown_html(handout)), encoding="utf-8")
    write_site(out, workshop, students, handout)
    if reviews:
        write_site(out, workshop, reviews, handout, folder="review", intro=REVIEW_NOTE)
    guide = guide_markdown(workshop, recorded)
    (out / "guide.md").write_text(guide, encoding="utf-8")
    (out / "guide.html").write_text(_page("Facilitator guide", _markdown_html(guide)), encoding="utf-8")
    if record_timings and measured:
        (workshop.folder / TIMINGS).write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
    return measured
