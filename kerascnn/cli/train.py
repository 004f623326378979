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
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run with its saved settings")
    flags.add_data_flags(p, "--skip-bad-images", "--image-size", "--val-split", "--limit-train", "--batch-size")
    flags.add_augment_flags(p)
    flags.add_model_option_flags(p.add_argument_group("model"))
    flags.add_optimisation_flags(p)
    flags.add_run_flags(p)
    flags.add_transfer_flags(p)


def cmd_fit(args):
    """train a model; writes a run directory

    Train MODEL and write runs/<model>-<timestamp>/ (config.json, history.csv,
    best.keras, metrics.json, curves.png, tensorboard/).
    """
    from kerascnn.config import RunConfig

    settings = {k: v for k, v in vars(args).items() if k not in ("command", "handler", "model", "resume")}
    if args.resume:
        given = sorted(f"--{k.replace('_', '-')}" for k, v in settings.items() if v is not None)
        if given or args.model:
            raise UserError(
                f"--resume continues a run with its saved settings; drop {', '.join(given) or args.model}"
            )
        config = None
    else:
        if not args.model:
            raise UserError("name a model to train, e.g. `fit vgg11`; `list` shows them all")
        settings["model_options"] = {k: settings.pop(k) for k in flags.MODEL_OPTIONS}
        config = RunConfig.from_flags(args.model, **settings)

    from kerascnn.training.fit import fit

    fit(config, resume_dir=args.resume)
    return 0
