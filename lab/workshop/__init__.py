"""The CLIP Lab teaching workshop: one source notebook per module under notebooks/workshop/,
built into learner, solution, instructor and review editions, a handout, a facilitator guide and an
offline site; nbgrader reads the same sources (lab.workshop.nbgrader).

    python -m lab workshop agenda --start 09:30        # the schedule, core vs bonus, what to drop
    python -m lab workshop check                        # is this learner machine ready?
    python -m lab workshop prepare --out cache.zip      # every embedding and map the modules use
    python -m lab workshop build --out build/workshop   # student/, solutions/, instructor/, review/, handout, guide, site/

In the notebooks: `from lab.workshop import check, catch_up, answer` (see lab.workshop.checks).
"""
from importlib import import_module

__all__ = ["check", "catch_up", "answer", "summary"]


def __getattr__(name):  # imported on first use, so `python -m lab` starts without numpy/scipy
    if name in __all__:
        value = getattr(import_module(".checks", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lab.workshop' has no attribute {name!r}")
