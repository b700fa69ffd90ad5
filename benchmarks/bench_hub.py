"""Hub rehearsal benchmark: a real JupyterHub on loopback (the dummy authenticator, a local-process
spawner), a lone learner running the learner edition of a module through the hub's API, then N
learners at once, then the lone learner again, all with the shared read-only cache that
`workshop prepare` makes. Prints each learner's server start, kernel start, wall time (session to last
cell: what the learner waits), its ratio to the lone learner's time (the mean of the lone runs), the
kernel's CPU seconds and peak memory, and the floor: slowest <= (N / 2 + 1) x lone.
Needs jupyterhub (pip install -e '.[dev]') and configurable-http-proxy (make hub-proxy); run it as
root, or as a user who can read the virtual environment. tests/workshop/test_hub_rehearsal.py
asserts the same run's outcomes (finished, no errors, cache unchanged, nothing left); the speed floor
is this benchmark's.

    python benchmarks/bench_hub.py [--learners 6] [--module M1] [--env LAB_THREADS=1 ...]
                                   [--cache-zip cache.zip --notebook build/workshop/student/m1_zeroshot.ipynb]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "workshop"))

import lab  # noqa: E402,F401  first: the lab's thread policy
from _hub import Hub, kill_marked, learner_environment, make_root, read_only_copy, rehearse_room, \
    remove_tree, student_and_cache, tools_missing  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--learners", type=int, default=6, help="learners at once (default 6)")
    p.add_argument("--module", default="M1", help="the module to run (default M1)")
    p.add_argument("--env", nargs="*", default=[], metavar="KEY=VALUE",
                   help="variables for every learner's server and kernel (e.g. LAB_THREADS=1)")
    p.add_argument("--cache-zip", help="an existing `workshop prepare` zip (default: prepare one now)")
    p.add_argument("--notebook", help="with --cache-zip: the learner edition to run")
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args()
    missing = tools_missing()
    if missing:
        print("missing: " + "; ".join(missing))
        return 2
    extra = dict(kv.split("=", 1) for kv in args.env)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        if args.cache_zip:
            if not args.notebook:
                p.error("--cache-zip needs --notebook")
            nb_name, nb, zip_path = Path(args.notebook).name, json.loads(Path(args.notebook).read_text()), \
                Path(args.cache_zip)
        else:
            nb_name, nb, zip_path = student_and_cache(Path(tmp), args.module)
            print(f"prepared {zip_path.stat().st_size / 2 ** 20:.1f} MB cache and the learner edition of "
                  f"{nb_name} in {time.perf_counter() - t:.0f} s")
        root = make_root()
        names = [f"learner{i + 1}" for i in range(args.learners)]
        cache = read_only_copy(zip_path, root / "cache")
        hub = Hub(root / "hub", ["solo", *names], environment=learner_environment(cache, extra), timeout=120)
        load = os.getloadavg()[0]
        try:
            result = rehearse_room(hub, names, nb_name, nb, cache, limit=600)
        finally:
            kill_marked(hub.token)
            remove_tree(root)
    print(f"{nb_name} on a JupyterHub, {os.cpu_count()} CPUs, load average before {load:.1f}, after "
          f"{os.getloadavg()[0]:.1f}; learners' extra variables: {extra or 'none (the lab default policy)'}")
    print(result.table())
    failed = [r.learner for r in result.lone + result.crowd if r.error]
    ok = not failed and result.crowd and result.slowest_s <= result.floor_s
    print(f"cache unchanged: {result.cache_after == result.cache_before} "
          f"({', '.join(f'{k} {v}' for k, v in result.cache_after.items() if k.endswith(':integrity'))}); "
          f"processes left: {len(result.left)}; floor: {'met' if ok else 'NOT met'}"
          + (f"; failed: {failed}" if failed else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "learners": args.learners, "module": nb_name, "extra_env": extra, "lone_s": result.lone_s,
            "slowest_s": result.slowest_s if result.crowd else None, "floor_s": result.floor_s,
            "runs": [{k: getattr(r, k) for k in ("learner", "spawn_s", "kernel_s", "wall_s", "cpu_s", "rss_mb", "error")}
                     for r in result.lone + result.crowd]}, indent=1))
    return 0 if ok and not result.left and result.cache_after == result.cache_before else 1


if __name__ == "__main__":
    sys.exit(main())
