"""Soak test of the hang fixes (issue 21), run by hand, not in CI: the main job and the browser suite
again and again on a loaded machine, each under a wall-clock limit, looking for hangs, lost results and
leftover processes.

    python benchmarks/soak.py                         # 5 cold reports + 2 browser-suite runs (hours on 2 cores)
    python benchmarks/soak.py --reports 5 --browser 0 --notebooks notebooks/04_robustness.ipynb \
        notebooks/06_limitations_and_class_design.ipynb      # the two notebooks that hung

Every run has one busy process beside it (`python -c "while True: pass"`) and, at a random moment, a
second `python -m lab report` on the same fresh cache (two users of one machine and one cache). A run
that passes its limit is a hang: its process group is killed and it counts. A report run is lost
when its exit status is not 0 or its manifest misses a notebook, an executed notebook or its HTML.
After each run, any process whose environment still names the run's cache folder is a leftover.
Prints one line per run and the totals: runs, failures, hangs (0 allowed), leftovers, slowest.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _busy import busy  # noqa: E402


def _start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "w") as fh:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def _wait(proc: subprocess.Popen, deadline: float) -> int | None:
    """Exit status, or None after killing its whole process group at the deadline (a hang)."""
    try:
        return proc.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def _leftovers(token: str) -> list[str]:
    """Live processes whose environment names `token` (the run's cache folder)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if token.encode() not in fh.read():
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                command = fh.read().replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{pid} {command[:100]}")
        except OSError:
            continue
    return found


def _report_lost(out: Path, planned: int) -> str | None:
    """Why a report's results are incomplete, or None."""
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return "no manifest.json"
    entries = manifest["notebooks"]
    if len(entries) != planned:
        return f"{len(entries)} of {planned} notebooks in the manifest"
    bad = [f"{e['notebook']}: {e['status']} {e.get('error')}" for e in entries if e["status"] != "ok"]
    missing = [e["notebook"] for e in entries if not (out / e["executed"]).exists() or not e.get("html")]
    return "; ".join(bad + [f"{m}: no executed notebook or HTML" for m in missing]) or None


def soak_run(kind: str, k: int, args, scratch: Path, rng: random.Random) -> dict:
    cache = scratch / f"cache-{kind}-{k}"
    env = {**os.environ, "LAB_CACHE_DIR": str(cache), "CI": "true"}
    report = [sys.executable, "-m", "lab", "report", "--no-progress", *(["--notebooks", *args.notebooks]
                                                                          if args.notebooks else [])]
    for name, value in args.parameter or []:
        report += ["-p", name, value]
    if kind == "report":
        main = report + ["--out", str(scratch / f"report-{k}")]
    else:
        main = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/browser"]
    second_at = rng.uniform(0, args.second_within)
    result = {"kind": kind, "run": k, "second_at": round(second_at, 1)}
    with busy(True):
        start = time.monotonic()
        deadline = start + args.limit
        proc = _start(main, env, scratch / f"{kind}-{k}.log")
        time.sleep(min(second_at, args.limit))
        second = _start(report + ["--out", str(scratch / f"second-{kind}-{k}")], env, scratch / f"second-{kind}-{k}.log")
        rc = _wait(proc, deadline)
        result["seconds"] = round(time.monotonic() - start, 1)
        rc2 = _wait(second, deadline + args.limit)
    result.update(rc=rc, second_rc=rc2, hang=rc is None or rc2 is None)
    planned = len(args.notebooks) if args.notebooks else len(list((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    lost = [why for why in (_report_lost(scratch / f"second-{kind}-{k}", planned),
                            _report_lost(scratch / f"report-{k}", planned) if kind == "report" else None) if why]
    result["failed"] = bool(result["hang"] or rc != 0 or rc2 != 0 or lost)
    result["lost"] = lost
    time.sleep(2)  # processes that are on their way out
    result["leftovers"] = _leftovers(str(cache))
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reports", type=int, default=5, help="cold report runs (default 5)")
    p.add_argument("--browser", type=int, default=2, help="browser-suite runs (default 2)")
    p.add_argument("--limit", type=float, default=3600, help="wall-clock seconds per run before it counts as a hang")
    p.add_argument("--second-within", type=float, default=300, help="the second report starts within this many s")
    p.add_argument("--notebooks", nargs="+", help="report only these notebooks (default: all)")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", help="keep every run's folders and logs here (default: a temporary folder)")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(args.keep or tmp)
        scratch.mkdir(parents=True, exist_ok=True)
        for kind, n in (("report", args.reports), ("browser", args.browser)):
            for k in range(n):
                r = soak_run(kind, k, args, scratch, rng)
                results.append(r)
                print(f"{kind:7s} #{k}: {'HANG' if r['hang'] else 'failed' if r['failed'] else 'ok':6s} "
                      f"{r['seconds']:7.1f} s (second report at {r['second_at']} s; rc {r['rc']}/{r['second_rc']})"
                      + (f" lost: {r['lost']}" if r["lost"] else "")
                      + (f" leftovers: {r['leftovers']}" if r["leftovers"] else ""), flush=True)
    slowest = max(results, key=lambda r: r["seconds"]) if results else None
    print(f"runs {len(results)}, failures {sum(r['failed'] for r in results)}, hangs {sum(r['hang'] for r in results)} "
          f"(0 allowed), leftover processes {sum(len(r['leftovers']) for r in results)}"
          + (f", slowest {slowest['kind']} #{slowest['run']} {slowest['seconds']:.0f} s" if slowest else ""))
    return 0 if results and not any(r["failed"] or r["leftovers"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
