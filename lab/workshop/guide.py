"""The facilitator guide, generated from the workshop's source: per module the objectives and
keypoints, the minutes split into teaching and exercises, each section's measured compute time,
each exercise's named mistakes (the hints lab.workshop.checks gives), the think questions with their
answers, the discussion prompts, what to say or skip when the room is behind, and the instructor notes.

    python -m lab workshop build --out build/workshop   # writes guide.md and guide.html beside the editions
    from lab.workshop import guide, source
    text = guide.guide_markdown(source.load())          # timings from notebooks/workshop/timings.json

What the source does not give is printed as "missing" (never made up): objectives, keypoints and
`behind` are notebook metadata under "workshop"; teaching / exercises are section-cell metadata.
The guide holds the answers: it is for facilitators, not the learners' site.
"""
from __future__ import annotations

import re

from . import source as src

__all__ = ["MISSING", "exercise_hints", "answer_of", "module_markdown", "guide_markdown"]

MISSING = "_missing_"
_ANSWER = re.compile(r"""^\s*my_answer\s*=\s*["']([a-d])["']""", re.M)


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _prompt(cell) -> str:
    """A prompt cell's text without its heading and its 'set my_answer' instruction, on one line."""
    lines = cell.source.strip().splitlines()
    lines = [ln for ln in lines[1 if lines and lines[0].startswith("#") else 0:] if "my_answer" not in ln]
    return _one_line("\n".join(lines))


def exercise_hints(name: str) -> tuple[list[str], list[str]] | None:
    """(named mistakes, invariant hints and the changed-in-place hint) that `check` gives for one exercise;
    None if it has no check."""
    from .checks import EXERCISES
    ex = EXERCISES.get(name)
    return None if ex is None else (list(ex.mistakes), [hint for _, hint in ex.invariants]
                                    + ([ex.keeps_inputs] if ex.keeps_inputs else []))


def answer_of(module: src.Module, question_cell) -> str | None:
    """The letter the solution sets in the first code cell after a question's text."""
    cells = module.notebook.cells
    start = next(i for i, c in enumerate(cells) if c is question_cell)
    for cell in cells[start + 1:]:
        if cell.cell_type == "code":
            found = _ANSWER.search("\n".join(src.solution_lines(cell.source)))
            return found.group(1) if found else None
    return None


def _list(items, what: str) -> list[str]:
    if not items:
        return [f"{MISSING} (notebook metadata workshop.{what})"]
    return [f"- {_one_line(str(x))}" for x in items]


def _split(sections) -> str:
    known = [s for s in sections if s.teaching is not None]
    if not known:
        return f"teaching / exercises {MISSING}"
    text = f"teaching {sum(s.teaching for s in known)} · exercises {sum(s.exercises for s in known)} min"
    return text + (f" ({len(sections) - len(known)} section(s) without the split: {MISSING})"
                   if len(known) < len(sections) else "")


def _seconds(value) -> str:
    if value is None:
        return f"{MISSING} (build with --record-timings)"
    return "< 1 s" if value < 1 else f"{round(value)} s"


def module_markdown(module: src.Module, offsets: dict, timings: dict, drop: list[dict]) -> list[str]:
    info, measured = module.info, timings.get(module.path.stem, {})
    out = [f"## {module.name} · {module.title} — `{module.path.stem}.ipynb`", "",
           f"{module.minutes} min (+ {module.bonus_minutes} min bonus beside the core); {_split(module.sections)}; "
           f"measured compute {_seconds(sum(measured.values()) if measured else None)}", "",
           "**Objectives**", ""] + _list(info.get("objectives"), "objectives")
    out += ["", "**Keypoints**", ""] + _list(info.get("keypoints"), "keypoints")
    out += ["", "| from start | section | kind | min | teaching | exercises | compute |",
            "|---|---|---|---|---|---|---|"]
    for s in module.sections:
        start = offsets.get((module.name, s.title))
        split = (MISSING, MISSING) if s.teaching is None else (s.teaching, s.exercises)
        out.append(f"| {'' if start is None else f'{start // 60}:{start % 60:02d}'} | {_one_line(s.title)} | {s.kind} "
                   f"| {s.minutes} | {split[0]} | {split[1]} | {_seconds(measured.get(s.title))} |")
    out += ["", "**Exercises and the mistakes the checks name**", ""]
    for name, kind, _ in module.prompts("exercise"):
        hints = exercise_hints(name)
        label = f"- **{name}**{' (bonus)' if kind == 'bonus' else ''}: "
        if hints is None:
            out.append(label + "no check in lab/workshop/checks.py")
            continue
        mistakes, invariants = hints
        out.append(label + ("; ".join(_one_line(h) for h in mistakes) if mistakes else "no named mistake"))
        if invariants:
            out.append("  - also checked: " + "; ".join(_one_line(h) for h in invariants))
    out += ["", "**Think questions**", ""]
    out += [f"- **{name}** (answer {answer_of(module, cell) or MISSING}): {_prompt(cell)}"
            for name, _, cell in module.prompts("question")] or [MISSING]
    out += ["", "**Discussion prompts**", ""]
    out += [f"- **{name}**: {_prompt(cell)}" for name, _, cell in module.prompts("discussion")] or [
        f"{MISSING} (a markdown cell with metadata workshop.discussion)"]
    out += ["", "**When the room is behind**", "", _one_line(info["behind"]) if info.get("behind") else
            f"{MISSING} (notebook metadata workshop.behind)"]
    mine = [r for r in drop if r["module"] == module.name]
    if mine:
        out += ["", "Drop first: " + "; ".join(f"{r['title'].split(': ', 1)[1]} ({r['minutes']} min)" for r in mine)]
    notes = [_one_line(re.sub(r"^\*\*Instructor:?\*\*:?\s*", "", c.source.strip()))
             for c in module.notebook.cells if src.is_instructor(c)]
    out += ["", "**Instructor notes**", ""] + ([f"- {n}" for n in notes] or [MISSING])
    return out + [""]


def guide_markdown(workshop: src.Workshop, timings: dict | None = None) -> str:
    """The whole guide as markdown; `timings` defaults to the source folder's timings.json."""
    timings = src.read_timings(workshop.folder) if timings is None else timings
    rows = src.schedule(workshop)
    offsets = {(r["module"], r["section"]): r["offset"] for r in rows if r["module"]}
    tot = src.totals(workshop)
    sections = [s for m in workshop.modules for s in m.sections]
    lines = [f"# Facilitator guide · {workshop.title}", "",
             f"{tot['total']} min: core {tot['core']} + breaks and wrap-up {tot['break']} (bonus {tot['bonus']} beside the core) "
             f"(planned {workshop.minutes}); modules {_split(sections)}. Compute times are the best measured "
             "(notebooks/workshop/timings.json); the answers below are for facilitators only.", ""]
    drop = src.drop_order(workshop)
    for module in workshop.modules:
        lines += module_markdown(module, offsets, timings, drop)
    return "\n".join(lines)
