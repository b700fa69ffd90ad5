"""The module paths before lab was regrouped into core / data / studies / training / dist, kept for
one release: `import lab.zeroshot`, `from lab import robustness` and `lab.robustness` still work and
warn (DeprecationWarning) with the new path; so does `lab.training.supervised` (now
lab.studies.baselines). The lab's own code uses the new paths only.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__all__ = ["MOVED", "install"]

MOVED = {
    **{f"lab.{m}": f"lab.core.{m}" for m in ["models", "checkpoints", "registry", "encoding", "images", "cache", "memo"]},
    "lab.prompts": "lab.data.prompts",
    **{f"lab.{m}": f"lab.studies.{m}" for m in ["zeroshot", "prompt_engineering", "attribution", "attribution_metrics",
                                               "robustness", "linear_probe", "retrieval", "limitations", "class_design"]},
    "lab.embedding_maps": "lab.studies.maps",
    "lab.probe_study": "lab.studies.probes_fewshot_retrieval",
    **{f"lab.{m}": f"lab.training.{m}" for m in ["train", "model_card"]},
    "lab.runs": "lab.dist.runs",
    # the baseline CNNs: below the studies that use them, so in the studies' bottom layer
    "lab.supervised": "lab.studies.baselines",
    "lab.training.supervised": "lab.studies.baselines",
}


def moved(old: str):
    """The module now at MOVED[old], with a DeprecationWarning naming its new path."""
    new = MOVED[old]
    warnings.warn(f"{old} moved to {new}; import it from there (the old path goes in the next release)",
                  DeprecationWarning, stacklevel=3)
    return importlib.import_module(new)


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`import lab.<old>` gives the module at its new path (the same object, not a copy)."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        return moved(spec.name)

    def exec_module(self, module):
        pass


def install():
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.insert(0, _Alias())  # ahead of other finders: an old path is only ever this alias
