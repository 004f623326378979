"""Studies: the classic comparisons, each reproduced by one command with a report.

    format    the TOML study file: arms, seeds, budgets; checked key by key
    catalog   the studies shipped in files/ (alexnet-vs-vgg, lrn, auxiliary, augmentation,
              vgg-depth, grid), found by name, or a user's file by path
    plan      a study at one budget as runs (arm x seed) or one `tune` search
    estimate  time left, from measured seconds per training image
    folder    the study folder: study.json, runs/, resuming and refusing another study's folder
    runner    every run through `fit` (skip finished, resume interrupted), or the search through `tune`
    results   the numbers back from the run directories, per arm over seeds
    findings  what the study found, computed from the numbers
    figures   learning curves, per-class accuracy, confusion, receptive fields, filters,
              feature maps, Grad-CAM
    report    report.md, self-contained report.html, results.csv

This layer sits above training and tuning (it runs both) and below the CLI
(`python main.py study NAME|FILE`, `study-report DIR`).
"""

from kerascnn._lazy import lazy_exports

_PUBLIC = {
    "find_study": "kerascnn.studies.catalog",
    "shipped_names": "kerascnn.studies.catalog",
    "load_study": "kerascnn.studies.format",
    "parse_study": "kerascnn.studies.format",
    "plan_study": "kerascnn.studies.plan",
    "run_study": "kerascnn.studies.runner",
    "write_report": "kerascnn.studies.report",
}

__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
