"""The workshop's source: notebooks/workshop/workshop.yaml (the day's order, breaks, wrap-up) and
one notebook per module whose markdown cells carry the timing and the exercise marks.

Cell metadata under "workshop":
    {"section": "Logits and probabilities", "minutes": 12, "kind": "core",
     "teaching": 5, "exercises": 7}   a section starts here (teaching + exercises == minutes, optional)
A "bonus" section runs beside the core section before it, for the learners who finish that one
early: it takes no time of its own in the day (schedule gives it the same clock time).
    {"exercise": "m1.logits"}      this markdown cell is an exercise's prompt (goes to the handout)
    {"question": "m1.q1"}          a multiple-choice think question's text (goes to the handout)
    {"discussion": "m1.d1"}        an open discussion prompt (goes to the handout and the guide)
Notebook metadata under "workshop": module, title, and for the facilitator guide objectives (list),
keypoints (list) and behind (what to say or skip when the room is behind). Cells tagged
"instructor" are instructor notes. Code between `### BEGIN SOLUTION` and `### END SOLUTION` is the
solution (nbgrader's markers; lab.workshop.nbgrader adds nbgrader's cell metadata).

    schedule(load()) -> rows: offset, minutes, kind, module, title, section, beside
    agenda_text(load(), start="09:30") -> the printed schedule
    solution_lines(cell.source) -> the solution's lines; read_timings(folder) -> timings.json (the
    measured compute times the build folds in), both read by the build and the facilitator guide
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml

from ..errors import BadInput

__all__ = ["SOURCE", "KINDS", "PROMPTS", "BEGIN", "END", "TIMINGS", "Section", "Module", "Break", "Workshop", "meta",
           "is_instructor", "solution_lines", "read_timings", "read_module", "load", "schedule", "drop_order", "totals",
           "agenda_text"]

SOURCE = Path(__file__).resolve().parent.parent.parent / "notebooks" / "workshop"
KINDS = ("core", "bonus")
PROMPTS = ("exercise", "question", "discussion")  # markdown cells the handout and the guide collect
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
TIMINGS = "timings.json"  # each section's best measured compute time, beside workshop.yaml


@dataclass
class Section:
    title: str
    minutes: int
    kind: str  # "core" or "bonus"
    teaching: int | None = None  # the minutes' split, when the source gives it
    exercises: int | None = None


@dataclass
class Module:
    path: Path
    name: str  # "M1"
    title: str
    notebook: nbformat.NotebookNode
    sections: list[Section] = field(default_factory=list)

    @property
    def minutes(self) -> int:
        """The module's time in the day: its core sections (bonus ones run beside them)."""
        return sum(s.minutes for s in self.sections if s.kind == "core")

    @property
    def bonus_minutes(self) -> int:
        return sum(s.minutes for s in self.sections if s.kind == "bonus")

    @property
    def info(self) -> dict:
        """The notebook's workshop metadata (module, title, objectives, keypoints, behind)."""
        return self.notebook.metadata.get("workshop", {})

    def prompts(self, kind: str) -> list[tuple[str, str, object]]:
        """(name, section kind, cell) of every `kind` cell ("exercise", "question", "discussion")."""
        out, section = [], "core"
        for cell in self.notebook.cells:
            m = meta(cell)
            section = m.get("kind", "core") if "section" in m else section
            if cell.cell_type == "markdown" and kind in m:
                out.append((m[kind], section, cell))
        return out


@dataclass
class Break:
    title: str
    minutes: int


@dataclass
class Workshop:
    title: str
    minutes: int
    items: list  # Module | Break, in the day's order
    folder: Path

    @property
    def modules(self) -> list[Module]:
        return [m for m in self.items if isinstance(m, Module)]


def meta(cell) -> dict:
    return cell.metadata.get("workshop", {})


def is_instructor(cell) -> bool:
    return "instructor" in cell.metadata.get("tags", [])


def solution_lines(code: str) -> list[str]:
    """The lines between the markers (what the learner edition must never show)."""
    lines, inside = [], False
    for line in code.splitlines():
        if line.strip() in (BEGIN, END):
            inside = line.strip() == BEGIN
        elif inside:
            lines.append(line)
    return lines


def read_timings(folder: Path) -> dict:
    """{module stem: {section title: seconds}} from the source folder's timings.json ({} without one)."""
    path = Path(folder) / TIMINGS
    return json.loads(path.read_text()) if path.exists() else {}


def read_module(path: Path) -> Module:
    nb = nbformat.read(path, as_version=4)
    info = nb.metadata.get("workshop", {})
    if not info.get("module"):
        raise BadInput(f"{path}: notebook metadata needs workshop.module (e.g. 'M1') and workshop.title")
    module = Module(path, info["module"], info.get("title", path.stem), nb)
    for i, cell in enumerate(nb.cells):
        m = meta(cell)
        if "section" in m:
            if m.get("kind", "core") not in KINDS or not isinstance(m.get("minutes"), int):
                raise BadInput(f"{path.name} cell {i}: a section needs integer minutes and kind in {KINDS}; got {m}")
            split = (m.get("teaching"), m.get("exercises"))
            if split != (None, None) and not (all(isinstance(v, int) and v >= 0 for v in split)
                                              and sum(split) == m["minutes"]):
                raise BadInput(f"{path.name} cell {i}: teaching + exercises must be whole minutes adding up to "
                               f"minutes; got {m}")
            module.sections.append(Section(m["section"], m["minutes"], m.get("kind", "core"), *split))
    if not module.sections:
        raise BadInput(f"{path.name}: no section cells (metadata workshop.section / minutes)")
    return module


def load(folder: str | Path | None = None, modules: list[str] | None = None) -> Workshop:
    """Read workshop.yaml and its module notebooks; `modules` (names like "M1" or file stems) keeps a subset."""
    folder = Path(folder or SOURCE)
    spec_file = folder / "workshop.yaml"
    if not spec_file.is_file():
        raise BadInput(f"{spec_file} not found: the workshop source folder needs a workshop.yaml")
    spec = yaml.safe_load(spec_file.read_text())
    items = []
    for entry in spec["agenda"]:
        if "module" in entry:
            module = read_module(folder / entry["module"])
            if modules and module.name not in modules and module.path.stem not in modules:
                continue
            items.append(module)
        else:
            b = entry["break"]
            items.append(Break(b["title"], int(b["minutes"])))
    return Workshop(spec["title"], int(spec.get("minutes", 180)), items, folder)


def _clock(start: dt.datetime, minutes: int) -> str:
    return (start + dt.timedelta(minutes=minutes)).strftime("%H:%M")


def schedule(workshop: Workshop) -> list[dict]:
    """One row per module section and break: offset (minutes from start), minutes, kind, module, title,
    section (the section's own title; "" for a break), beside (for a bonus section, the core section
    it runs beside, which gives it its offset; "" otherwise)."""
    rows, t = [], 0
    for item in workshop.items:
        if isinstance(item, Break):
            rows.append({"offset": t, "minutes": item.minutes, "kind": "break", "module": "", "title": item.title,
                         "section": "", "beside": ""})
            t += item.minutes
            continue
        core = None  # the last core row: where a bonus section sits
        for s in item.sections:
            row = {"offset": t, "minutes": s.minutes, "kind": s.kind, "module": item.name,
                   "title": f"{item.name} {item.title}: {s.title}", "section": s.title, "beside": ""}
            if s.kind == "bonus":
                if core is None:
                    raise BadInput(f"{item.path.name}: bonus section {s.title!r} comes before any core section; "
                                   "a bonus runs beside the core section before it")
                row.update(offset=core["offset"], beside=core["section"])
            else:
                core = row
                t += s.minutes
            rows.append(row)
    return rows


def drop_order(workshop: Workshop) -> list[dict]:
    """What to drop first when running late: the 'Explore' widget sections, longest and latest first
    (learners can do them afterwards). Bonus sections cost the day nothing: they run beside the core."""
    rows = schedule(workshop)
    return sorted((r for r in rows if r["kind"] == "core" and ": Explore" in r["title"]),
                  key=lambda r: (-r["minutes"], -r["offset"]))


def totals(workshop: Workshop) -> dict:
    """Minutes of core, break (breaks and wrap-up) and bonus; total is the day's length (core + break),
    since bonus sections run beside the core."""
    rows = schedule(workshop)
    out = {k: sum(r["minutes"] for r in rows if r["kind"] == k) for k in ("core", "bonus", "break")}
    out["total"] = out["core"] + out["break"]
    return out


def agenda_text(workshop: Workshop, start: str = "09:00") -> str:
    """The printed schedule: clock times, the bonus sections beside their core ones, totals and the
    drop-first list."""
    try:
        t0 = dt.datetime.strptime(start, "%H:%M")
    except ValueError as e:
        raise BadInput(f"--start takes a clock time like 09:30; got {start!r}") from e
    lines = [workshop.title, ""]
    for r in schedule(workshop):
        if r["kind"] == "bonus":
            lines.append(f"       ({r['minutes']} min) {r['title']}  [bonus, beside {r['beside']!r}, "
                         "for those who finish early]")
        else:
            lines.append(f"{_clock(t0, r['offset'])}  {r['minutes']:>3} min  {r['title']}")
    tot = totals(workshop)
    lines += [f"{_clock(t0, tot['total'])}  end", "",
              f"core {tot['core']} min + breaks and wrap-up {tot['break']} min = {tot['total']} min "
              f"(planned {workshop.minutes}); bonus {tot['bonus']} min beside the core"]
    if tot["total"] > workshop.minutes:
        lines.append(f"over by {tot['total'] - workshop.minutes} min: drop from the list below")
    lines += ["", "Running late? Drop these first:"]
    for r in drop_order(workshop):
        lines.append(f"  - {r['title']} ({r['minutes']} min, at {_clock(t0, r['offset'])})")
    return "\n".join(lines)
