"""Training: the built-in CLIPs (train, `python -m lab train`), their model cards (model_card,
`python -m lab card`) and the builder of the shift suites' files (suites, `python -m lab suites`).

All three sit above the studies (they evaluate with them). The small supervised CNN baselines that
were here (lab.training.supervised) are lab.studies.baselines, in the studies' bottom layer (the
robustness study trains its baselines with them); the old path imports for one release, with a
DeprecationWarning. pyproject.toml's import contracts say so; docs/ARCHITECTURE.md explains it.
"""
__all__: list[str] = []
