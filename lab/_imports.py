"""An optional import the lab's processes skip because of what it costs every kernel.

jsonschema imports `rfc3987_syntax`, when it is installed, for its "iri" / "iri-reference" format
checks; importing it builds an Earley parser: 1.0-1.2 s of CPU on a 2-core machine. Every kernel
that draws a figure pays it (plotly -> nbformat -> jsonschema), which on a shared machine is a
third of a workshop module's CPU: six learners on a 2-core hub wait for each other's parsers.
The only schemas a lab process validates are notebooks' (nbformat), which use no iri format, so
`skip()` (called by `import lab`) marks the module absent in this process before anything imports
jsonschema; jsonschema then leaves those two format checks out. A process that has already
imported it keeps it, and LAB_KEEP_RFC3987=1 keeps it everywhere.
"""
from __future__ import annotations

import os
import sys

__all__ = ["SKIPPED", "skip"]

SKIPPED = ("rfc3987_syntax",)


def skip() -> None:
    if os.environ.get("LAB_KEEP_RFC3987") == "1":
        return
    for name in SKIPPED:
        sys.modules.setdefault(name, None)  # `import rfc3987_syntax` raises ImportError; jsonschema expects that
