"""`python -m lab workshop ...`: the instructor's commands (see lab.workshop)."""
from __future__ import annotations

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
        notes: list[str] = []
        problems, seconds = timed_check(hub=args.hub, cache=args.cache, info=notes)
        for n in notes:
            print(f"· {n}")
        for p in problems:
            print(f"✗ {p}")
        print(f"workshop check: {'ready' if not problems else f'{len(problems)} problem(s)'} ({seconds:.0f} s)")
        return 1 if problems else 0
    from .room import prepare
    info = prepare(args.out, modules=args.modules)
    about = info["manifest"]
    models = ", ".join(f"{m['name']} {m['precision']} ({sum(m['embeddings'].values())})" for m in about["models"])
    print(f"{info['path']}: {info['files']} files, {info['bytes'] / 2 ** 20:.1f} MB, prepared on {about['device']}: "
          f"embeddings of {models or 'no model'}, {sum(about['memoized'].values())} memoized results")
    print("learners unzip it into their cache folder ($LAB_CACHE_DIR or ~/.cache/clip-lab): "
          f"unzip -o {info['path']} -d ~/.cache/clip-lab; then python -m lab workshop check --cache {info['path']} "
          "says whether their machine reads it")
    return 0


def add_parser(sub) -> None:
    w = sub.add_parser("workshop", help="the teaching workshop: agenda, build, check, prepare")
    w.add_argument("action", choices=["agenda", "build", "check", "prepare"])
    w.add_argument("--start", default="09:00", help="agenda: clock time the workshop starts (HH:MM)")
    w.add_argument("--out", default=None, help="build: output folder (build/workshop); prepare: zip file (cache.zip)")
    w.add_argument("--modules", nargs="+", help="build/prepare only these modules (M0 ... M4 or file stems)")
    w.add_argument("--record-timings", action="store_true",
                   help="build: write this build's compute times to notebooks/workshop/timings.json")
    w.add_argument("--hub", nargs="?", const="auto", default=None, metavar="SERVER_PYTHON",
                   help="check: check the Jupyter server's environment (JupyterHub) instead of the kernel's for the "
                        "page's extensions and the kernel; found from the running server or `jupyter` on PATH, or "
                        "name its Python, its environment prefix or its jupyter script")
    w.add_argument("--cache", default=None, metavar="ZIP_OR_FOLDER",
                   help="check: will this machine read this prepared cache.zip (or the folder it was unpacked into), "
                        "and how many entries (default: the cache folder, when it holds a manifest)")
    w.add_argument("--source", default=None, help="the workshop source folder (default notebooks/workshop)")
    w.set_defaults(func=_run)


def _run(args) -> int:
    if args.out is None:
        args.out = "cache.zip" if args.action == "prepare" else "build/workshop"
    return cmd_workshop(args)
