"""Workshop benchmark: every module's solutions executed with a cold embedding cache, then warm
(what a learner with the `workshop prepare` cache gets). Prints each module's compute seconds
(the sum of its cells) and the warm/cold ratio. Targets on a 2-core CPU: <= 60 s cold and
<= 15 s warm per module.

    python benchmarks/bench_workshop.py [--modules M1 M3]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.workshop.build import build  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modules", nargs="+", help="only these modules (M0 ... M4)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LAB_CACHE_DIR"] = str(Path(tmp) / "cache")
        cold = build(Path(tmp) / "cold", modules=args.modules, progress=False)
        warm = build(Path(tmp) / "warm", modules=args.modules, progress=False)
    print(f"{'module':<22}{'cold s':>8}{'warm s':>8}{'warm/cold':>11}")
    for stem in cold:
        c, w = sum(cold[stem].values()), sum(warm[stem].values())
        print(f"{stem:<22}{c:>8.1f}{w:>8.1f}{w / c:>11.2f}")
        for section in cold[stem]:
            print(f"  {section:<40}{cold[stem][section]:>6.1f}{warm[stem][section]:>8.1f}")


if __name__ == "__main__":
    main()
