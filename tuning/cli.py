"""The `tune` and `tune-report` subcommands.

`add_parsers(sub)` is called from `kerascnn.cli.app.build_parser`; the flags
that `tune` shares with `fit` come from `kerascnn.cli.flags` (this module
imports nothing else of the CLI, so the tuning CLI plugs into the main parser
without an import cycle). Handlers raise `UserError` for bad input (one line
on stderr, exit 2, from `kerascnn.cli.app.main`) and import
TensorFlow/KerasTuner only once the flags are known to be valid.
"""

import pathlib

from kerascnn.cli import flags
from kerascnn.errors import UserError

SPACE_HELP = "search space: seed-grid (the 48-run CIFAR-10 AlexNet study) or wide (continuous ranges)"
TUNER_HELP = "grid (default), random, bayesian or hyperband"
# tune's flags that go into the base RunConfig of every trial, and into the SearchRequest.
RUN_SETTINGS = (
    "dataset", "data_dir", "image_size", "limit_train", "augment",
    "epochs", "patience", "seed", "precision", "jit", "export_dir", "serving_precision",
)
SEARCH_SETTINGS = (
    "space", "tuner", "max_trials", "max_epochs", "results_dir", "overwrite", "export", "distribution_strategy",
)


def add_parsers(sub):
    p = flags.add_command(sub, "tune", cmd_tune, epilog=flags.EPILOG)
    p.add_argument("model", help="registered model name (see `list`)")
    g = p.add_argument_group("search")
    g.add_argument("--space", default="seed-grid", help=SPACE_HELP)
    g.add_argument("--tuner", default="grid", help=TUNER_HELP)
    g.add_argument(
        "--max-trials", type=flags.positive_int,
        help="trials to run (default: the whole grid; 10 for random/bayesian)",
    )
    g.add_argument(
        "--max-epochs", type=flags.positive_int, help="hyperband: most epochs of one model (default --epochs)"
    )
    g.add_argument("--results-dir", help="results folder (default tuning_runs/<model>-<space>-<tuner>)")
    g.add_argument("--overwrite", action="store_true", help="delete the results folder's earlier search and start over")
    g.add_argument("--dry-run", action="store_true", help="list the configurations (or ranges) and exit")
    g.add_argument(
        "--distribution-strategy", default="default", help="default, or mirrored: each trial on all local GPUs"
    )
    flags.add_data_flags(p, "--image-size", "--limit-train", "--augment")
    g = flags.add_group(
        p, "each trial", "--epochs", "--patience",
        description="the same in every trial (the wide space also tunes the augmentation and the width)",
    )
    flags.add_model_option_flags(g, "--width-multiplier")
    flags.add_flags(g, "--seed")
    flags.add_precision_flags(g)
    flags.add_flags(g, "--export", "--export-dir", "--serving-precision")
    p.set_defaults(export=False)  # SearchRequest.export is a bool; fit's --export defaults to None

    p = flags.add_command(sub, "tune-report", cmd_tune_report)
    p.add_argument("results_dir", metavar="TUNE_DIR")
    p.add_argument("--top", type=flags.positive_int, default=10, help="best trials to print (default 10)")


def request_from_args(args):
    """A checked `SearchRequest` from parsed `tune` flags."""
    from kerascnn.config import RunConfig

    from tuning.search import SearchRequest

    base = RunConfig.from_flags(
        args.model,
        model_options={"width_multiplier": args.width_multiplier},
        **{k: getattr(args, k) for k in RUN_SETTINGS},  # None keeps RunConfig's default
    )
    request = SearchRequest(base=base, **{k: getattr(args, k) for k in SEARCH_SETTINGS})
    request.check()
    if args.serving_precision and not args.export:
        raise UserError("--serving-precision says how --export writes the best trial's SavedModel; add --export")
    if args.width_multiplier is not None:
        from kerascnn.models import model_arguments

        if "width_multiplier" not in model_arguments(args.model):
            raise UserError(f"model {args.model} has no width multiplier; drop --width-multiplier")
    return request


def cmd_tune(args):
    """KerasTuner search over hyperparameters; writes trials.csv, summary.md, plots

    Search MODEL's hyperparameters with KerasTuner. Results go to --results-dir
    (default tuning_runs/<model>-<space>-<tuner>/): trials.csv, summary.md,
    plots/, tensorboard/ (HParams). Re-running the same command resumes an
    interrupted search; --overwrite starts over. For several machines set
    KERASTUNER_TUNER_ID (chief, tuner0, tuner1, ...), KERASTUNER_ORACLE_IP and
    KERASTUNER_ORACLE_PORT and share the results folder.
    """
    from tuning.search import dry_run, run_search

    request = request_from_args(args)
    if args.dry_run:
        return dry_run(request)
    run_search(request)
    return 0


def cmd_tune_report(args):
    """rewrite trials.csv, summary.md and the plots of a search

    Rebuild TUNE_DIR's trials.csv, summary.md and plots/ from its trial files
    (works on a running, finished or interrupted search) and print the best trials.
    """
    from tuning import searchdir
    from tuning.results import best, write_report

    path = pathlib.Path(args.results_dir)
    if not (path / searchdir.PROJECT).is_dir():
        raise UserError(f"{path} is not a tuning results folder (no {searchdir.PROJECT}/ inside); pass the --results-dir of a `tune` run")
    rows = write_report(path)
    print(f"{len(rows)} trials; wrote {path / searchdir.TRIALS_CSV}, {path / searchdir.SUMMARY}, {path / searchdir.PLOTS}/")
    for r in best(rows, args.top):
        print(
            f"  trial {r['trial_id']}: val {r['best_val_accuracy']:.4f}  test {r['test_accuracy']:.4f}  "
            f"{r['optimizer']} lr {r['learning_rate']:g} batch {r['batch_size']} split {r['val_split']} "
            f"{r['regularization']}  {r['epochs_run']} epochs"
        )
    return 0
