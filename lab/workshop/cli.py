"""`python -m lab workshop ...`: the instructor's commands (see lab.workshop)."""
from __future__ import annotations

import argparse

__all__ = ["cmd_workshop", "add_parser"]


def cmd_workshop(args) -> int:
    from . import source
    if args.action == "agenda":
        print(source.agenda_text(source.load(args.source), args.start))
        return 0
    if args.action == "build":
        from .build import build
        measured = build(args.out, modules=args.modules, record_timings=args.record_timings, folder=args.source)
        for stem, sections in measured.items():
            print(f"  {stem}: {sum(sections.values()):.1f} s of compute")
        print(f"workshop: {args.out}/ (student, solutions, instructor, handout.html, site/index.html)")
        return 0
    if args.action == "check":
        from .room import timed_check
        problems, seconds = timed_check()
        for p in problems:
            print(f"✗ {p}")
        print(f"workshop check: {'ready' if not problems else f'{len(problems)} problem(s)'} ({seconds:.0f} s)")
        return 1 if problems else 0
    from .room import prepare
    info = prepare(args.out, modules=args.modules)
    print(f"{info['path']}: {info['files']} files, {info['bytes'] / 2 ** 20:.1f} MB; learners unzip it into their "
          "cache folder ($LAB_CACHE_DIR or ~/.cache/clip-lab): unzip -o cache.zip -d ~/.cache/clip-lab")
    return 0


def add_parser(sub) -> None:
    w = sub.add_parser("workshop", help="the teaching workshop: agenda, build, check, prepare")
    w.add_argument("action", choices=["agenda", "build", "check", "prepare"])
    w.add_argument("--start", default="09:00", help="agenda: clock time the workshop starts (HH:MM)")
    w.add_argument("--out", default=None, help="build: output folder (build/workshop); prepare: zip file (cache.zip)")
    w.add_argument("--modules", nargs="+", help="build/prepare only these modules (M0 ... M4 or file stems)")
    w.add_argument("--record-timings", action="store_true",
                   help="build: write this build's compute times to notebooks/workshop/timings.json")
    w.add_argument("--source", default=None, help="the workshop source folder (default notebooks/workshop)")
    w.set_defaults(func=_run)


def _run(args) -> int:
    if args.out is None:
        args.out = "cache.zip" if args.action == "prepare" else "build/workshop"
    return cmd_workshop(args)
