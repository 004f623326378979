"""KerasTuner searches over the classic CNNs: hypermodel, named spaces, tuners, reports.

    tuning.spaces      named search spaces (seed-grid, wide)
    tuning.hypermodel  CNNHyperModel: registry model + hp-chosen options/optimizer/data, built
                       and recorded through kerascnn.training's phases
    tuning.tuners      grid, random, bayesian, hyperband with per-trial measurements
    tuning.searchdir   the results folder: identity, resume, --overwrite
    tuning.results     trials.csv and summary.md, rebuilt from disk
    tuning.plots       the study's questions as PNG plots
    tuning.search      one search end to end (what `tune` runs)
    tuning.cli         the `tune` and `tune-report` subcommands

Only tuning.spaces, tuning.searchdir, tuning.results, tuning.plots and
tuning.cli import without TensorFlow.
"""

from kerascnn._lazy import lazy_exports

_PUBLIC = {
    "SearchRequest": "tuning.search",
    "run_search": "tuning.search",
    "dry_run": "tuning.search",
    "CNNHyperModel": "tuning.hypermodel",
    "get_space": "tuning.spaces",
    "make_tuner": "tuning.tuners",
    "collect": "tuning.results",
    "write_report": "tuning.results",
}

__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
