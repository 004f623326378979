"""The flags of the command line, declared once, and the types of their values.

Every flag that two commands share (fit and tune, fit and evaluate, the
analysis commands, ...) is declared here, in `FLAGS`, so that it has one type,
one set of choices and one help text wherever it appears. The command modules
(`kerascnn.cli.train`, `serving`, `analysis`, `weights`, `tuning.cli`) pick
flags with the group functions below, declare only the flags that are theirs
alone, and create their subcommands with `add_command` (help and description
from the handler's docstring).

Every value type is a `flag_type`: the text parsed, then checked by a kind of
`kerascnn.validation` (for a RunConfig setting, the very kind `RunConfig`
checks it with, `kerascnn.config.KINDS`), so NaN, infinities and numbers out of
range are refused where they are typed. It raises
`argparse.ArgumentTypeError("must be ...")`; the `OneLineParser` reports it as
one line, `--flag must be ..., got 'x'`, with exit status 2, before TensorFlow
is imported. This module imports nothing heavy: `kerascnn.config` is plain
dataclasses.
"""

import argparse
import inspect
import re

from kerascnn import validation
from kerascnn.config import KINDS, PRECISIONS
from kerascnn.errors import ConfigError

EPILOG = "Data: CIFAR-10 from tensorflow-datasets unless --dataset or --data-dir says otherwise."


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line (exit 2) instead of usage + message."""

    def error(self, message):
        # "argument --epochs: must be a positive integer" reads "--epochs must be ...".
        message = re.sub(r"^argument (--?[\w-]+): must ", r"\1 must ", message)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_command(sub, name, handler, **settings):
    """Subcommand `name` running `handler(args)`.

    Its help (in the list of commands) is the first line of the handler's
    docstring, its description (in `name --help`) the rest of it.
    """
    summary, _, details = inspect.cleandoc(handler.__doc__).partition("\n")
    parser = sub.add_parser(name, help=summary, description=details.strip() or None, **settings)
    parser.set_defaults(handler=handler)
    return parser


# --- value types -------------------------------------------------------------


def flag_type(parse, kind, keep_text=False):
    """An argparse `type=`: `parse(text)`, checked by `kind` (a `kerascnn.validation` kind).

    Text that `parse` cannot read, or a value `kind` refuses (NaN and infinities
    included), raises `argparse.ArgumentTypeError("must be EXPECTED, got 'TEXT'")`.
    Returns the value, or the text itself with `keep_text`. The function carries
    `kind` as its attribute, so a test can tell what each flag accepts.
    """

    def convert(text):
        try:
            value = kind("value", parse(text))
        except (ValueError, KeyError, TypeError, OverflowError, ConfigError):
            raise argparse.ArgumentTypeError(f"must be {kind.expected}, got {text!r}") from None
        return text if keep_text else value

    convert.kind = kind
    return convert


def setting_type(name):
    """The flag type of the numeric RunConfig setting `name`: its kind in `kerascnn.config.KINDS`."""
    kind = KINDS[name]
    return flag_type(int if kind.integer else float, kind)


def _int_or_float(text):
    try:
        return int(text)
    except ValueError:
        return float(text)


def _sizes(text, channels):
    """N, H,W or (with `channels`) H,W,C as a tuple: N is N x N, C defaults to 3."""
    parts = [int(p) for p in text.split(",")]
    if len(parts) == 1:
        parts *= 2
    if channels and len(parts) == 2:
        parts.append(3)
    return tuple(parts)


def _devices(text):
    """auto, cpu, all; a GPU count (an int); GPU indices "0,2" (a list of ints)."""
    text = text.strip().lower()
    if text in DEVICE_WORDS:
        return text
    return [int(i) for i in text.split(",")] if "," in text else int(text)


def _ports(text):
    """The ports of "host:port,host:port"; ValueError for an address without a host or a port."""
    ports = []
    for address in (a.strip() for a in text.split(",") if a.strip()):
        host, colon, port = address.rpartition(":")
        if not (host and colon):
            raise ValueError(address)
        ports.append(int(port))
    return ports


DEVICE_WORDS = ("auto", "cpu", "all")
ON_OFF_AUTO = validation.Choice(
    "on, off or auto", {"on": True, "true": True, "off": False, "false": False, "auto": "auto"}
)

positive_int = flag_type(int, validation.positive_int)
non_negative_int = flag_type(int, validation.non_negative_int)
count_or_fraction = flag_type(_int_or_float, KINDS["limit_train"])
held_out_fraction = flag_type(float, KINDS["val_split"])
probability = flag_type(float, KINDS["random_erasing"])
image_size = flag_type(lambda t: _sizes(t, False), KINDS["image_size"])
input_shape = flag_type(lambda t: _sizes(t, True), validation.Shape(3, "H,W,C (e.g. 227,227,3), H,W or N"))
on_off_auto = flag_type(ON_OFF_AUTO.parse, ON_OFF_AUTO)
batch_size = flag_type(lambda t: t if t == "auto" else int(t), KINDS["batch_size"])
devices = flag_type(
    _devices,
    validation.Either(
        "auto, cpu, all, a GPU count or GPU indices such as 0,1",
        validation.positive_int,
        validation.Sequence(validation.non_negative_int, "GPU indices"),
        words=DEVICE_WORDS,
    ),
    keep_text=True,
)
workers = flag_type(
    _ports,
    validation.Sequence(
        validation.interval(1, 65535, integer=True),
        "two or more host:port addresses separated by commas (ports 1 to 65535)",
        min_length=2,
    ),
    keep_text=True,
)


# --- the shared flags ----------------------------------------------------------

FLAGS = {
    # data
    "--dataset": dict(help="tensorflow-datasets name (default cifar10) or 'synthetic'"),
    "--data-dir": dict(help="image folder (train/<class>/, test/<class>/) or CIFAR-10 binary archive/folder"),
    "--skip-bad-images": dict(
        action="store_true",
        default=None,
        help="leave out image files of --data-dir that cannot be decoded (counted and named "
        "in config.json) instead of stopping",
    ),
    "--image-size": dict(type=image_size, help="resize to N (square) or H,W; 224 for the paper models"),
    "--val-split": dict(
        type=held_out_fraction,
        help="fraction of train held out for validation (default 0.1); 0 trains on all of it and tests the "
        "last epoch's model",
    ),
    "--limit-train": dict(type=count_or_fraction, help="use N training images, or a fraction such as 0.05"),
    "--batch-size": dict(
        type=batch_size,
        help="per-replica batch size (default 128), or auto: the largest power of two that trains on the device",
    ),
    # augmentation
    "--augment": dict(
        choices=["cifar", "alexnet", "inception", "none"],  # kerascnn.config.AUGMENT_PRESETS
        help="preset: cifar (pad 4, crop, flip; default up to 64 px), alexnet (8/7 resize, crop, flip, "
        "PCA jitter; default above 64 px), inception (random-resized crop, flip), none",
    ),
    "--pad-mode": dict(choices=["reflect", "zero"], help="padding of the cifar crop (default reflect)"),
    "--translate": dict(
        type=setting_type("translate"), metavar="N",
        help="pixels the cifar crop pads and shifts by (default 4; 0: flips only)",
    ),
    "--pca-jitter": dict(action=argparse.BooleanOptionalAction, default=None, help="AlexNet PCA colour jitter"),
    "--pca-sigma": dict(type=setting_type("pca_sigma"), help="std of the jitter's alpha (default 0.1)"),
    "--pca-scale": dict(
        choices=["stddev", "eigenvalue"], help="shift alpha*sqrt(lambda) (default) or the paper's alpha*lambda"
    ),
    "--flip": dict(
        choices=["random", "alternating", "none"],  # kerascnn.config.FLIPS
        help="which images the flip mirrors: a random half every epoch (default), alternating (airbench: "
        "each image the other way round from the epoch before), none",
    ),
    "--cutout": dict(type=setting_type("cutout"), metavar="N", help="zero an N x N square per image"),
    "--random-erasing": dict(type=probability, metavar="P", help="erase a random rectangle with probability P"),
    "--tta": dict(action="store_true", default=None, help="also report test accuracy averaged over ten patches"),
    # model options
    "--dropout": dict(type=setting_type("dropout"), help="dropout rate of the classifier"),
    "--batch-norm": dict(
        action=argparse.BooleanOptionalAction, default=None, help="batch normalisation (models that take it)"
    ),
    "--head": dict(choices=["auto", "paper", "compact"], help="VGG classifier size"),
    "--width-multiplier": dict(
        type=setting_type("width_multiplier"), help="scale every layer's width (models that take it)"
    ),
    "--whiten": dict(
        action=argparse.BooleanOptionalAction, default=None,
        help="initialise the first convolution as a patch-whitening of the training images (airbench) and "
        "freeze it; needs 2 x its kernel's k*k*3 filters (54 for 3x3)",
    ),
    "--whiten-bias-epochs": dict(
        type=setting_type("whiten_bias_epochs"), metavar="N",
        help="with --whiten, train the whitening layer's bias for the first N epochs, then freeze it "
        "(airbench: 3; default 0, the bias stays 0)",
    ),
    # model shape (analysis commands)
    "--input-shape": dict(
        type=input_shape, metavar="H,W,C", help="input size (default: the model's own, e.g. 224,224,3)"
    ),
    "--num-classes": dict(type=positive_int, help="classes of the last layer (default: the model's own)"),
    # optimisation
    "--optimizer": dict(help="sgd (default), adam, adamw, rmsprop"),
    "--lr": dict(type=setting_type("lr"), help="peak learning rate (default 0.01 for sgd, 0.001 otherwise)"),
    "--momentum": dict(type=setting_type("momentum"), help="SGD momentum (default 0.9)"),
    # On/off pairs: a recipe can turn these on (`fast`), so the user must be able to turn them off.
    "--nesterov": dict(action=argparse.BooleanOptionalAction, default=None, help="Nesterov momentum"),
    "--weight-decay": dict(type=setting_type("weight_decay"), help="L2 weight decay (default 5e-4)"),
    "--schedule": dict(help="constant, step, plateau, cosine (default), onecycle (linear up to --lr, linear down to 0)"),
    "--warmup-epochs": dict(
        type=setting_type("warmup_epochs"), help="linear warm-up from 0 (cosine and onecycle)"
    ),
    "--final-lr-fraction": dict(
        type=setting_type("final_lr_fraction"), metavar="F",
        help="cosine and onecycle end at F times --lr (default 0; airbench's one-cycle ends at 0.07)",
    ),
    "--initial-lr-fraction": dict(
        type=setting_type("initial_lr_fraction"), metavar="F",
        help="the warm-up of cosine and onecycle starts at F times --lr (default 0; airbench's at 0.2)",
    ),
    "--step-epochs": dict(type=setting_type("step_epochs"), help="epochs between step decays (default 30)"),
    "--lr-decay": dict(type=setting_type("lr_decay"), help="factor of step and plateau decays (default 0.1)"),
    "--plateau-patience": dict(
        type=setting_type("plateau_patience"), help="epochs without progress before a plateau decay (default 5)"
    ),
    "--label-smoothing": dict(type=setting_type("label_smoothing"), help="label smoothing (default 0)"),
    "--clip-norm": dict(type=setting_type("clip_norm"), help="clip gradients to this global norm"),
    "--ema": dict(
        type=setting_type("ema"), metavar="DECAY",
        help="average the weights over steps (e.g. 0.999); the average is validated, tested and exported",
    ),
    "--lookahead": dict(
        type=setting_type("lookahead"), metavar="K",
        help="every K steps pull the weights back to a slow average that training continues from "
        "(Lookahead, airbench's schedule; airbench: 5)",
    ),
    "--freeze-bn-scale": dict(
        action=argparse.BooleanOptionalAction, default=None,
        help="do not train the batch-norm scales (gamma stays 1, as in airbench)",
    ),
    "--decay-norm-and-bias": dict(
        action=argparse.BooleanOptionalAction, default=None,
        help="weight-decay the biases and batch-norm parameters too, not only the kernels (PyTorch's and "
        "airbench's decay; offsets at --bn-bias-lr-scale S take decay / S); default off",
    ),
    "--bn-bias-lr-scale": dict(
        type=setting_type("bn_bias_lr_scale"), metavar="SCALE",
        help="train the batch-norm offsets at SCALE times the learning rate (airbench: 64; default 1)",
    ),
    # run
    "--recipe": dict(
        metavar="NAME",
        help="start from this training recipe of the model (`list` shows them and marks the default: "
        "scratch for the plain VGGs, paper for the others); "
        "the flags given beside it override single values",
    ),
    "--epochs": dict(type=setting_type("epochs"), help="maximum epochs (default 30)"),
    "--patience": dict(
        type=setting_type("patience"), help="stop after N epochs without better validation accuracy"
    ),
    "--precision": dict(
        choices=PRECISIONS,
        help="auto (default): mixed precision where this machine gains from it (kerascnn.runtime.hardware), "
        "float32 elsewhere (fit records the choice in config.json)",
    ),
    "--jit": dict(
        nargs="?", const=True, type=on_off_auto, metavar="on|off|auto",
        help="compile with XLA: --jit (on), --no-jit (off), --jit auto (default: on for GPUs, off on CPUs)",
    ),
    "--no-jit": dict(dest="jit", action="store_false", default=None, help=argparse.SUPPRESS),
    "--seed": dict(type=setting_type("seed"), help="random seed: the split, the weights, tune's search (default 0)"),
    "--devices": dict(type=devices, help="auto (default), cpu, all, a GPU count, or GPU indices such as 0,1"),
    "--cpu-replicas": dict(
        type=setting_type("cpu_replicas"), metavar="N",
        help="split the CPU into N devices and train mirrored on them",
    ),
    "--model-parallel": dict(
        action="store_true",
        default=None,
        help="alexnet only: its two towers on two devices, as on the paper's two GPUs (two GPUs, or "
        "--cpu-replicas 2); one replica, the batch is not split",
    ),
    "--sync-bn": dict(action="store_true", default=None, help="batch-norm statistics over the global batch"),
    "--scale-lr": dict(
        choices=["linear", "none"], help="linear: multiply --lr by the replica count (default none)"
    ),
    "--workers": dict(type=workers, metavar="HOST:PORT,...", help="multi-worker cluster (instead of TF_CONFIG)"),
    "--worker-index": dict(
        type=setting_type("worker_index"), metavar="I", help="this process's place in --workers (0 = chief)"
    ),
    "--resume": dict(
        metavar="RUN_DIR",
        help="continue a run (interrupted or finished) with its saved settings; flags given beside it must "
        "equal them, except --epochs above the saved budget, which extends the run",
    ),
    "--config": dict(
        metavar="PATH",
        help="start a new run with the settings of a run's config.json (or run directory); flags given "
        "beside it override single values",
    ),
    "--run-dir": dict(help="write the run here instead of runs/<model>-<timestamp>"),
    "--export": dict(
        action="store_true", default=None, help="export a SavedModel when training ends (tune: the best trial's)"
    ),
    "--export-dir": dict(help="root of exports (default saved_models)"),
    # pretrained weights and transfer learning
    "--weights": dict(
        metavar="imagenet|PATH",
        help="start from weights: imagenet (keras.applications: vgg16, vgg19, resnet50/101/152; Caffe "
        "normalisation, 224 px unless --image-size), a .keras or .weights.h5 file, or a RUN_DIR (its "
        "best.keras); layers are matched by name, a classifier of another size is re-initialised",
    ),
    "--init-from": dict(
        metavar="RUN_DIR",
        help="VGG incremental depth (Simonyan & Zisserman 2015, 3.1): copy the first four conv and the three "
        "FC layers of a shallower VGG run (e.g. fit vgg16 --init-from runs/vgg11-...)",
    ),
    "--freeze-backbone": dict(
        type=setting_type("freeze_backbone"),
        metavar="E",
        help="train only the new layers (head) for the first E epochs, then all layers at --finetune-lr",
    ),
    "--finetune-lr": dict(
        type=setting_type("finetune_lr"),
        help="learning rate once the backbone is unfrozen (default: a tenth of --lr)",
    ),
    # serving
    "--format": dict(
        choices=["savedmodel", "tflite"],
        help="savedmodel (default): a SavedModel version for TF Serving; tflite: a TensorFlow Lite file "
        "beside them, in saved_models/<model>/tflite/<version>/",
    ),
    "--serving-precision": dict(
        choices=["float32", "bfloat16", "trained"],
        help="what the SavedModel's signature computes in: float32 (default; the same weights, no per-call "
        "casts: 2x faster at batch 1 on a CPU), bfloat16 (the weights stored in bfloat16: fastest on CPUs "
        "with AMX or AVX512-BF16, slow without) or trained (the run's mixed precision, for accelerators)",
    ),
    "--quantize": dict(
        choices=["none", "float16", "int8"],
        help="with --format tflite: none (float32, default), float16 weights, or int8 weights and "
        "activations calibrated on training images of the run",
    ),
    "--calibration-images": dict(
        type=positive_int, metavar="N",
        help="training images of the run that calibrate --quantize int8 (default 300)",
    ),
    "--csv": dict(metavar="OUT", help="write one row per image (path, top-k classes and probabilities) to OUT"),
    # output
    "--json": dict(action="store_true", help="print the result as JSON"),
    "--out": dict(help="output folder (default %(default)s)"),
}

MODEL_OPTION_FLAGS = ("--dropout", "--batch-norm", "--head", "--width-multiplier")
# The RunConfig.model_options keys of MODEL_OPTION_FLAGS.
MODEL_OPTIONS = tuple(f[2:].replace("-", "_") for f in MODEL_OPTION_FLAGS)


def add_flags(container, *names, default=None):
    """Add the `FLAGS` called `names` to a parser or group; `default` (if given) replaces theirs."""
    for name in names:
        spec = dict(FLAGS[name])
        if default is not None:
            spec["default"] = default
        container.add_argument(name, **spec)
    return container


def add_group(parser, title, *names, description=None):
    """A new argument group of `parser` holding the `FLAGS` called `names`."""
    return add_flags(parser.add_argument_group(title, description), *names)


# --- flag groups ----------------------------------------------------------------


def add_data_flags(parser, *optional):
    """The "data" group: --dataset, --data-dir, then the flags named in `optional`."""
    return add_group(parser, "data", "--dataset", "--data-dir", *optional)


def add_augment_flags(parser):
    return add_group(
        parser, "augmentation (training data only)", "--augment", "--pad-mode", "--translate", "--flip", "--pca-jitter",
        "--pca-sigma", "--pca-scale", "--cutout", "--random-erasing", "--tta",
    )


def add_model_option_flags(container, *names):
    """`names` (default all) of MODEL_OPTION_FLAGS: --dropout, --batch-norm, --head, --width-multiplier."""
    return add_flags(container, *(names or MODEL_OPTION_FLAGS))


def add_model_shape_flags(parser, title="model"):
    """--input-shape and --num-classes of a model built fresh (the analysis commands)."""
    return add_group(parser, title, "--input-shape", "--num-classes")


def add_precision_flags(container):
    """--precision float32|mixed_float16|mixed_bfloat16|auto and --jit/--no-jit [on|off|auto]."""
    return add_flags(container, "--precision", "--jit", "--no-jit")


def add_optimisation_flags(parser):
    return add_group(
        parser, "optimisation", "--optimizer", "--lr", "--momentum", "--nesterov", "--weight-decay",
        "--schedule", "--warmup-epochs", "--initial-lr-fraction", "--final-lr-fraction", "--step-epochs", "--lr-decay",
        "--plateau-patience", "--label-smoothing", "--clip-norm", "--ema", "--lookahead", "--bn-bias-lr-scale", "--freeze-bn-scale",
        "--decay-norm-and-bias",
    )


def add_run_flags(parser):
    """fit's "run" group: epochs, precision, devices, distribution, where the run goes."""
    g = add_group(parser, "run", "--recipe", "--epochs", "--patience")
    add_precision_flags(g)
    return add_flags(
        g, "--seed", "--devices", "--cpu-replicas", "--model-parallel", "--sync-bn", "--scale-lr",
        "--workers", "--worker-index", "--run-dir", "--export", "--export-dir", "--serving-precision",
    )


def add_transfer_flags(parser):
    return add_group(
        parser, "pretrained weights and transfer learning",
        "--weights", "--init-from", "--freeze-backbone", "--finetune-lr",
    )
