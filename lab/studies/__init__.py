"""The studies, one module each: a study is a set of functions that return DataFrames (memoized with
lab.core.memo), drawn by the module of the same name in figures/ and told by a notebook.

    zeroshot, prompt_engineering   notebook 01      maps                       notebook 02
    attribution (+ _metrics)       notebook 03      robustness                 notebook 04
    linear_probe, retrieval,       notebook 05      limitations, class_design  notebook 06
      probes_fewshot_retrieval
    stats: the intervals and fits they share (Clopper-Pearson, Wilson, logit line, bootstrap band)
    neighbours: k-NN graphs (exact, or approximate with their recall) that maps and the explorer share
    baselines: the small supervised CNNs (robustness baselines, the adversarial suite's judge)
    decomposition, textspan,       notebook 07: the embedding as a sum of layers, heads, tokens, neurons;
      sparse_concepts              heads described by texts; images as sparse sums of concepts

    from lab.studies import zeroshot
    lab.studies.robustness          # imported on first use

Which study may import which is written in pyproject.toml ([tool.importlinter]); docs/ARCHITECTURE.md.
"""
from importlib import import_module

__all__ = ["zeroshot", "prompt_engineering", "maps", "attribution", "attribution_metrics", "robustness",
           "linear_probe", "retrieval", "limitations", "class_design", "probes_fewshot_retrieval", "stats",
           "decomposition", "textspan", "sparse_concepts",
           "neighbours", "baselines"]


def __getattr__(name):
    if name in __all__:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'lab.studies' has no attribute {name!r}")
