"""Training: the built-in CLIPs (train, `python -m lab train`), their model cards (model_card,
`python -m lab card`), the small supervised CNN baselines (supervised) and the builder of the
shift suites' files (suites, `python -m lab suites`).

supervised sits below the studies (the robustness study trains its baselines with it); train,
model_card and suites sit above them (they evaluate with the studies). pyproject.toml's import
contracts say so; docs/ARCHITECTURE.md explains it.
"""
__all__: list[str] = []
