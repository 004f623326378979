"""`fit`: train a model and write a run directory.

Registered on the main parser by `kerascnn.cli.app.build_parser()`; the flags
come from `kerascnn.cli.flags`. A mistake by the user raises a `UserError`
(one line on stderr, exit status 2); TensorFlow is imported only in the handler.
"""

from kerascnn.cli import flags
from kerascnn.errors import UserError


def add_parsers(sub):
    p = flags.add_command(sub, "fit", cmd_fit, epilog=flags.EPILOG)
    p.add_argument("model", nargs="?", help="registered model name (see `list`)")
    flags.add_flags(p, "--resume", "--config")
    flags.add_data_flags(p, "--skip-bad-images", "--image-size", "--val-split", "--limit-train", "--batch-size")
    flags.add_augment_flags(p)
    flags.add_flags(flags.add_model_option_flags(p.add_argument_group("model")), "--whiten", "--whiten-bias-epochs")
    flags.add_optimisation_flags(p)
    flags.add_run_flags(p)
    flags.add_transfer_flags(p)


def fit_settings(args):
    """The run settings among `fit`'s parsed flags: all but the command, the model and --resume/--config."""
    return {k: v for k, v in vars(args).items() if k not in ("command", "handler", "model", "resume", "config")}


def cmd_fit(args):
    """train a model; writes a run directory

    Train MODEL and write runs/<model>-<timestamp>/ (config.json, history.csv,
    best.keras, metrics.json, curves.png, tensorboard/). With --resume RUN_DIR,
    continue that run (the same command with --resume appended is accepted;
    --epochs above its budget extends it); with --config PATH, start a new
    run with the settings of that run's config.json.
    """
    from kerascnn.config import RunConfig

    settings = fit_settings(args)
    if args.resume and args.config:
        raise UserError(
            "--resume continues a run and --config starts a new one with a run's settings; give one of them"
        )
    if args.resume:
        from kerascnn.training.resume import check_resume_flags

        epochs = check_resume_flags(args.resume, args.model, settings, model_options=flags.MODEL_OPTIONS)
        from kerascnn.training.fit import fit

        fit(resume_dir=args.resume, epochs=epochs)
        return 0
    settings["model_options"] = {k: settings.pop(k) for k in flags.MODEL_OPTIONS}
    if args.config:
        from kerascnn.training.replay import replay_config

        config = replay_config(args.config, args.model, settings)
    else:
        if not args.model:
            raise UserError("name a model to train, e.g. `fit vgg11`; `list` shows them all")
        if args.serving_precision and not args.export:
            raise UserError("--serving-precision says how --export writes the SavedModel; add --export")
        config = RunConfig.from_flags(args.model, **settings)

    from kerascnn.training.fit import fit

    fit(config)
    return 0
