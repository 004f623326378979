"""The `tune` and `tune-report` subcommands.

`add_parsers(sub)` is called from `kerascnn.cli.main.build_parser`. Handlers raise
`UserError` for bad input (one line on stderr, exit 2, from `kerascnn.cli.main.main`)
and import TensorFlow/KerasTuner only once the flags are known to be valid.
"""

import pathlib

from kerascnn.errors import UserError

SPACE_HELP = "search space: seed-grid (the 48-run CIFAR-10 AlexNet study) or wide (continuous ranges)"
TUNER_HELP = "grid (default), random, bayesian or hyperband"


def add_parsers(sub):
    from kerascnn.cli.main import EPILOG, _add_data_flags, _count_or_fraction, _image_size

    p = sub.add_parser(
        "tune",
        help="KerasTuner search over hyperparameters; writes trials.csv, summary.md, plots",
        description="Search MODEL's hyperparameters with KerasTuner. Results go to --results-dir "
        "(default tuning_runs/<model>-<space>-<tuner>/): trials.csv, summary.md, plots/, tensorboard/ "
        "(HParams). Re-running the same command resumes an interrupted search; --overwrite starts over. "
        "For several machines set KERASTUNER_TUNER_ID (chief, tuner0, tuner1, ...), "
        "KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT and share the results folder.",
        epilog=EPILOG,
    )
    p.add_argument("model", help="registered model name (see `list`)")
    g = p.add_argument_group("search")
    g.add_argument("--space", default="seed-grid", help=SPACE_HELP)
    g.add_argument("--tuner", default="grid", help=TUNER_HELP)
    g.add_argument("--max-trials", type=int, help="trials to run (default: the whole grid; 10 for random/bayesian)")
    g.add_argument("--max-epochs", type=int, help="hyperband: most epochs of one model (default --epochs)")
    g.add_argument("--results-dir", help="results folder (default tuning_runs/<model>-<space>-<tuner>)")
    g.add_argument("--overwrite", action="store_true", help="delete the results folder's earlier search and start over")
    g.add_argument("--dry-run", action="store_true", help="list the configurations (or ranges) and exit")
    g.add_argument(
        "--distribution-strategy", default="default", help="default, or mirrored: each trial on all local GPUs"
    )
    g = _add_data_flags(p)
    g.add_argument("--image-size", type=_image_size, help="resize to N (square) or H,W")
    g.add_argument("--limit-train", type=_count_or_fraction, help="use N training images, or a fraction")
    g.add_argument("--augment", help="augmentation preset none, cifar, alexnet, inception (the wide space tunes it)")
    g = p.add_argument_group("each trial")
    g.add_argument("--epochs", type=int, help="maximum epochs per trial (default 30)")
    g.add_argument("--patience", type=int, help="early stopping after N epochs without better val accuracy")
    g.add_argument("--width-multiplier", type=float, help="fixed width multiplier (the wide space tunes it)")
    g.add_argument("--seed", type=int, help="seeds the tuner, the split, the weights (default 0)")
    g.add_argument("--export", action="store_true", help="export the best trial's model like `fit --export`")
    g.add_argument("--export-dir", help="root of exports (default saved_models)")
    p.set_defaults(handler=cmd_tune)

    p = sub.add_parser(
        "tune-report",
        help="rewrite trials.csv, summary.md and the plots of a search",
        description="Rebuild TUNE_DIR's trials.csv, summary.md and plots/ from its trial files "
        "(works on a running, finished or interrupted search) and print the best trials.",
    )
    p.add_argument("results_dir", metavar="TUNE_DIR")
    p.add_argument("--top", type=int, default=10, help="best trials to print (default 10)")
    p.set_defaults(handler=cmd_tune_report)


def request_from_args(args):
    """A checked `SearchRequest` from parsed `tune` flags."""
    from kerascnn.config import RunConfig

    from tuning.search import SearchRequest

    if args.max_trials is not None and args.max_trials < 1:
        raise UserError(f"--max-trials must be a positive integer. Received: max_trials={args.max_trials}")
    flags = dict(
        dataset=args.dataset,
        data_dir=args.data_dir,
        image_size=args.image_size,
        limit_train=args.limit_train,
        augment=args.augment,
        epochs=args.epochs,
        patience=args.patience,
        seed=args.seed,
        export_dir=args.export_dir,
        model_options={"width_multiplier": args.width_multiplier},
    )
    base = RunConfig.from_flags(args.model, **flags)
    request = SearchRequest(
        base=base,
        space=args.space,
        tuner=args.tuner,
        max_trials=args.max_trials,
        max_epochs=args.max_epochs,
        results_dir=args.results_dir,
        overwrite=args.overwrite,
        export=args.export,
        distribution_strategy=args.distribution_strategy,
    )
    request.check()
    if args.width_multiplier is not None:
        from kerascnn.models import model_arguments

        if "width_multiplier" not in model_arguments(args.model):
            raise UserError(f"model {args.model} has no width multiplier; drop --width-multiplier")
    return request


def cmd_tune(args):
    from tuning.search import dry_run, run_search

    request = request_from_args(args)
    if args.dry_run:
        return dry_run(request)
    run_search(request)
    return 0


def cmd_tune_report(args):
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
