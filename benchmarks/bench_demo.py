"""`make demo` on a shared machine: the batch report on the embedded default, cold (a fresh cache
and output folder, as on a fresh clone once set up), alone and beside one busy process
(`python -c "while True: pass"`), in one run. Prints both times and the ratio (floor: <= 2.5x).

    python benchmarks/bench_demo.py        # ~8 min alone, then beside the busy process (2-core machine)
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _busy import busy  # noqa: E402

LIMIT = 2.5


def demo_seconds(beside_busy: bool, scratch: Path) -> float:
    tag = "busy" if beside_busy else "alone"
    env = {**os.environ, "LAB_CACHE_DIR": str(scratch / f"cache-{tag}")}
    with busy(beside_busy):
        start = time.perf_counter()
        subprocess.run(["make", "demo", f"REPORT={scratch / f'report-{tag}'}"], cwd=HERE.parent, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main():
    with tempfile.TemporaryDirectory() as tmp:
        alone = demo_seconds(False, Path(tmp))
        print(f"make demo alone:                {alone:7.1f} s", flush=True)
        beside = demo_seconds(True, Path(tmp))
        print(f"make demo beside a busy process: {beside:7.1f} s", flush=True)
    ratio = beside / alone
    print(f"busy / alone: {ratio:.2f}x (floor <= {LIMIT}x): {'met' if ratio <= LIMIT else 'over the floor'}")


if __name__ == "__main__":
    main()
