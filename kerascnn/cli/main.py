"""Command line: `python main.py SUBCOMMAND ...` (also installed as `kerascnn`).

The CLI only parses flags into a RunConfig and calls the library. A mistake
by the user ends with one line on stderr and exit status 2; TensorFlow is
imported only once the flags are known to be valid.
"""

import argparse
import json
import sys

from kerascnn.cli.analysis import add_parsers as add_analysis_parsers
from kerascnn.cli.weights import add_parsers as add_weights_parsers
from tuning.cli import add_parsers as add_tuning_parsers
from kerascnn.errors import UserError

EPILOG = "Data: CIFAR-10 from tensorflow-datasets unless --dataset or --data-dir says otherwise."


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line (exit 2) instead of usage + message."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _image_size(text):
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or H,W, got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected positive N or H,W, got {text!r}")
    return tuple(parts)


def _batch_size(text):
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or auto, got {text!r}") from None


def _jit(text):
    value = {"on": True, "true": True, "off": False, "false": False, "auto": "auto"}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"expected on, off or auto, got {text!r}")
    return value


def _count_or_fraction(text):
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or a fraction, got {text!r}") from None


def _add_data_flags(p):
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help="tensorflow-datasets name (default cifar10) or 'synthetic'")
    g.add_argument("--data-dir", help="image folder (train/<class>/, test/<class>/) or CIFAR-10 binary archive/folder")
    return g


def _fit_parser(sub):
    p = sub.add_parser(
        "fit",
        help="train a model; writes a run directory",
        description="Train MODEL and write runs/<model>-<timestamp>/ (config.json, history.csv, "
        "best.keras, metrics.json, curves.png, tensorboard/).",
        epilog=EPILOG,
    )
    p.add_argument("model", nargs="?", help="registered model name (see `list`)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run with its saved settings")
    g = _add_data_flags(p)
    g.add_argument(
        "--skip-bad-images",
        action="store_true",
        default=None,
        help="leave out image files of --data-dir that cannot be decoded (counted and named "
        "in config.json) instead of stopping",
    )
    g.add_argument("--image-size", type=_image_size, help="resize to N (square) or H,W; 224 for the paper models")
    g.add_argument("--val-split", type=float, help="fraction of train held out for validation (default 0.1)")
    g.add_argument("--limit-train", type=_count_or_fraction, help="use N training images, or a fraction such as 0.05")
    g.add_argument(
        "--batch-size",
        type=_batch_size,
        help="per-replica batch size (default 128), or auto: the largest power of two that trains on the device",
    )
    g = p.add_argument_group("augmentation (training data only)")
    g.add_argument(
        "--augment",
        choices=["cifar", "alexnet", "inception", "none"],
        help="preset: cifar (pad 4, crop, flip; default up to 64 px), alexnet (8/7 resize, crop, flip, "
        "PCA jitter; default above 64 px), inception (random-resized crop, flip), none",
    )
    g.add_argument("--pad-mode", choices=["reflect", "zero"], help="padding of the cifar crop (default reflect)")
    g.add_argument(
        "--pca-jitter", action=argparse.BooleanOptionalAction, default=None, help="AlexNet PCA colour jitter"
    )
    g.add_argument("--pca-sigma", type=float, help="std of the jitter's alpha (default 0.1)")
    g.add_argument(
        "--pca-scale",
        choices=["stddev", "eigenvalue"],
        help="shift alpha*sqrt(lambda) (default) or the paper's alpha*lambda",
    )
    g.add_argument("--cutout", type=int, metavar="N", help="zero an N x N square per image")
    g.add_argument("--random-erasing", type=float, metavar="P", help="erase a random rectangle with probability P")
    g.add_argument(
        "--tta", action="store_true", default=None, help="also report test accuracy averaged over ten patches"
    )
    g = p.add_argument_group("model")
    g.add_argument("--dropout", type=float, help="dropout rate of the classifier")
    g.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None, help="batch normalisation")
    g.add_argument("--head", choices=["auto", "paper", "compact"], help="VGG classifier size")
    g.add_argument("--width-multiplier", type=float, help="scale every layer's width")
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", help="sgd (default), adam, adamw, rmsprop")
    g.add_argument("--lr", type=float, help="peak learning rate (default 0.01 for sgd, 0.001 otherwise)")
    g.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    g.add_argument("--nesterov", action="store_true", default=None, help="Nesterov momentum")
    g.add_argument("--weight-decay", type=float, help="L2 weight decay (default 5e-4)")
    g.add_argument("--schedule", help="constant, step, plateau, cosine (default)")
    g.add_argument("--warmup-epochs", type=float, help="linear warm-up before cosine decay")
    g.add_argument("--step-epochs", type=int, help="epochs between step decays (default 30)")
    g.add_argument("--lr-decay", type=float, help="factor of step and plateau decays (default 0.1)")
    g.add_argument("--plateau-patience", type=int, help="epochs without progress before a plateau decay (default 5)")
    g.add_argument("--label-smoothing", type=float, help="label smoothing (default 0)")
    g.add_argument("--clip-norm", type=float, help="clip gradients to this global norm")
    g = p.add_argument_group("run")
    g.add_argument("--epochs", type=int, help="maximum epochs (default 30)")
    g.add_argument("--patience", type=int, help="stop after N epochs without better validation accuracy")
    g.add_argument(
        "--precision",
        help="auto (default): mixed precision where this machine gains from it (kerascnn.runtime.hardware), "
        "float32 elsewhere, recorded in config.json; or float32, mixed_float16, mixed_bfloat16",
    )
    g.add_argument(
        "--jit", nargs="?", const=True, type=_jit, metavar="on|off|auto",
        help="compile with XLA: --jit (on), --no-jit (off), --jit auto (default: on for GPUs, off on CPUs)",
    )
    g.add_argument("--no-jit", dest="jit", action="store_false", default=None, help=argparse.SUPPRESS)
    g.add_argument("--seed", type=int, help="random seed (default 0)")
    g.add_argument("--devices", help="auto (default), cpu, all, a GPU count, or GPU indices such as 0,1")
    g.add_argument(
        "--cpu-replicas", type=int, metavar="N", help="split the CPU into N devices and train mirrored on them"
    )
    g.add_argument(
        "--model-parallel",
        action="store_true",
        default=None,
        help="alexnet only: its two towers on two devices, as on the paper's two GPUs (two GPUs, or "
        "--cpu-replicas 2); one replica, the batch is not split",
    )
    g.add_argument(
        "--sync-bn", action="store_true", default=None, help="batch-norm statistics over the global batch"
    )
    g.add_argument(
        "--scale-lr", choices=["linear", "none"], help="linear: multiply --lr by the replica count (default none)"
    )
    g.add_argument("--workers", metavar="HOST:PORT,...", help="multi-worker cluster (instead of TF_CONFIG)")
    g.add_argument("--worker-index", type=int, metavar="I", help="this process's place in --workers (0 = chief)")
    g.add_argument("--run-dir", help="write the run here instead of runs/<model>-<timestamp>")
    g.add_argument("--export", action="store_true", default=None, help="export a SavedModel when training ends")
    g.add_argument("--export-dir", help="root of exports (default saved_models)")
    g = p.add_argument_group("pretrained weights and transfer learning")
    g.add_argument(
        "--weights",
        metavar="imagenet|PATH",
        help="start from weights: imagenet (keras.applications: vgg16, vgg19, resnet50/101/152; Caffe "
        "normalisation, 224 px unless --image-size), a .keras or .weights.h5 file, or a RUN_DIR (its "
        "best.keras); layers are matched by name, a classifier of another size is re-initialised",
    )
    g.add_argument(
        "--init-from",
        metavar="RUN_DIR",
        help="VGG incremental depth (Simonyan & Zisserman 2015, 3.1): copy the first four conv and the three "
        "FC layers of a shallower VGG run (e.g. fit vgg16 --init-from runs/vgg11-...)",
    )
    g.add_argument(
        "--freeze-backbone",
        type=int,
        metavar="E",
        help="train only the new layers (head) for the first E epochs, then all layers at --finetune-lr",
    )
    g.add_argument(
        "--finetune-lr", type=float, help="learning rate once the backbone is unfrozen (default: a tenth of --lr)"
    )
    p.set_defaults(handler=cmd_fit)


MODEL_FLAGS = ("dropout", "batch_norm", "head", "width_multiplier")


def build_parser():
    parser = OneLineParser(
        prog="kerascnn",
        description="Build, train, evaluate and export the classic CNNs (VGG, ...) with Keras 3.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)

    p = sub.add_parser("list", help="registered models with a short description")
    p.set_defaults(handler=cmd_list)

    _fit_parser(sub)

    p = sub.add_parser(
        "evaluate",
        help="test accuracy of a run or an export",
        description="Top-1/top-5 accuracy and cross-entropy on a test split, through the same "
        "preprocessing as serving. The data defaults to what the model was trained on.",
    )
    p.add_argument("path", metavar="RUN_DIR_OR_EXPORT_DIR")
    _add_data_flags(p)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--limit", type=int, help="evaluate on the first N test images only")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser(
        "export",
        help="export a run's best model as a SavedModel",
        description="Write saved_models/<model>/<version>/ from RUN_DIR's best checkpoint: a SavedModel "
        "taking raw uint8 images, model.keras and labels.txt, verified after writing.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--export-dir", default="saved_models", help="root of exports (default saved_models)")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser(
        "predict",
        help="top-k classes of image files",
        description="Classify image files (JPEG, PNG, BMP, GIF; any size) with an export or a run.",
    )
    p.add_argument("path", metavar="EXPORT_DIR")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_predict)
    add_analysis_parsers(sub)  # summary, receptive-field, visualize, compare
    add_weights_parsers(sub)  # import-weights
    add_tuning_parsers(sub)  # tune, tune-report
    return parser


def _positive(name, value):
    if value is not None and value < 1:
        raise UserError(f"{name} must be a positive integer. Received: {name}={value}")


# --- subcommands -----------------------------------------------------------


def cmd_list(args):
    from kerascnn.models import list_models, model_description

    names = list_models()
    width = max(len(n) for n in names)
    for name in names:
        print(f"{name:<{width}}  {model_description(name)}")
    return 0


def cmd_fit(args):
    from kerascnn.config import RunConfig

    flags = {k: v for k, v in vars(args).items() if k not in ("command", "handler", "model", "resume")}
    if args.resume:
        given = sorted(f"--{k.replace('_', '-')}" for k, v in flags.items() if v is not None)
        if given or args.model:
            raise UserError(
                f"--resume continues a run with its saved settings; drop {', '.join(given) or args.model}"
            )
        config = None
    else:
        if not args.model:
            raise UserError("name a model to train, e.g. `fit vgg11`; `list` shows them all")
        flags["model_options"] = {k: flags.pop(k) for k in MODEL_FLAGS}
        config = RunConfig.from_flags(args.model, **flags)

    from kerascnn.training.fit import fit

    fit(config, resume_dir=args.resume)
    return 0


def cmd_evaluate(args):
    _positive("batch_size", args.batch_size)
    _positive("limit", args.limit)
    if args.dataset and args.data_dir:
        raise UserError("give either --dataset or --data-dir, not both")
    from kerascnn.serving.evaluate import evaluate

    result = evaluate(args.path, args.dataset, args.data_dir, args.batch_size, args.limit)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['model']} on {result['data']} ({result['images']} test images): "
            f"accuracy {result['accuracy']:.4f}, top-5 {result['top5_accuracy']:.4f}, "
            f"cross-entropy {result['cross_entropy']:.4f}"
        )
    return 0


def cmd_export(args):
    from kerascnn.serving.export import export_model
    from kerascnn.serving.predictor import load_run

    config, model, preprocessing = load_run(args.run_dir)
    class_names = config["resolved"]["class_names"]
    path = export_model(model, preprocessing, class_names, config["model"], args.export_dir, config)
    print(f"exported {args.run_dir} to {path}")
    return 0


def cmd_predict(args):
    _positive("top_k", args.top_k)
    from kerascnn.serving.predictor import decode_image_file, load_predictor, top_k

    images = [decode_image_file(p) for p in args.images]  # all readable before any work
    predictor = load_predictor(args.path)
    results = {}
    for path, image in zip(args.images, images):
        results[path] = top_k(predictor.probabilities(image)[0], predictor.class_names, args.top_k)
    if args.json:
        print(json.dumps({p: [{"class": c, "probability": q} for c, q in r] for p, r in results.items()}, indent=2))
    else:
        for path, ranked in results.items():
            print(path)
            for name, prob in ranked:
                print(f"  {prob:7.4f}  {name}")
    return 0


def main(argv=None):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a bad flag already reported in one line
        return e.code
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    command = f"kerascnn {args.command}"
    try:
        from kerascnn.runtime.quiet import import_tensorflow_quietly

        import_tensorflow_quietly()
        return args.handler(args)
    except UserError as e:
        print(f"{command}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        from kerascnn.serving.export import ExportError

        if not isinstance(e, ExportError):
            raise
        print(f"{command}: export failed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        hint = " (continue with `fit --resume RUN_DIR`)" if args.command == "fit" else ""
        print(f"{command}: interrupted{hint}", file=sys.stderr)
        return 130
