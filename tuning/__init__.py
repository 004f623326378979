"""KerasTuner searches over the classic CNNs: hypermodel, named spaces, tuners, reports.

    tuning.spaces      named search spaces (seed-grid, wide)
    tuning.hypermodel  CNNHyperModel: registry model + hp-chosen options/optimizer/data
    tuning.tuners      grid, random, bayesian, hyperband with per-trial measurements
    tuning.searchdir   the results folder: identity, resume, --overwrite
    tuning.results     trials.csv and summary.md, rebuilt from disk
    tuning.plots       the study's questions as PNG plots
    tuning.search      one search end to end (what `tune` runs)
    tuning.cli         the `tune` and `tune-report` subcommands

Only tuning.spaces, tuning.searchdir, tuning.results, tuning.plots and
tuning.cli import without TensorFlow.
"""
