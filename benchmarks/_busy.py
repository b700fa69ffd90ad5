"""The other tenant of a shared machine: one busy process (`python -c "while True: pass"`) for the
contention benchmarks, always stopped when the block ends.

    with busy(True):
        ...  # timed beside it
"""
from __future__ import annotations

import contextlib
import subprocess
import sys


@contextlib.contextmanager
def busy(on: bool = True):
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if on else None
    try:
        yield
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
