"""The coupled weight decay in the update step against the L2 penalty in the loss, in one process.

    python benchmarks/decay_in_update.py [MODEL ...] [--recipe fast] [--repeats 7] [--steps 5]
        [--batch-size N] [--precision auto] [--json OUT]

For each model (default alexnet_cifar, vgg16_bn, resnet18) the training step
of its recipe (`fit MODEL --recipe NAME`: optimizer, decay, batch size unless
`--batch-size`, model options) is built as `fit` builds it (`throughput.keras_candidate`) three
ways, and timed round-robin (`timing.interleaved`) on one fixed batch in
memory:

- update: the product's, `+ wd * v` added to each decayed gradient in the
  optimizer's update step (`kerascnn.training.weight_decay`);
- penalty: the reference it replaced on 2026-12-07, the same factors as Keras
  L2 regularisers `wd/2 * ||v||^2` added to the loss (the same gradients to
  the last bit, tests/test_training_weight_decay.py);
- none: no decay at all, the floor either can reach.

The figure is the ratio of median step times, penalty / update (above 1: the
update is faster). benchmarks/NOTES.md, 97.
"""

import json
import os
import statistics
import sys
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

from kerascnn.cli.flags import OneLineParser  # noqa: E402  (one-line argparse errors, exit 2)
from kerascnn.runtime.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

import dataclasses  # noqa: E402

import keras  # noqa: E402

from throughput import keras_candidate  # noqa: E402
from timing import interleaved  # noqa: E402
from vs_torch import default_precision  # noqa: E402

from kerascnn.config import RunConfig  # noqa: E402
from kerascnn.errors import ConfigError  # noqa: E402
from kerascnn.training import build as build_module  # noqa: E402
from kerascnn.training import weight_decay  # noqa: E402

DEFAULT_MODELS = ("alexnet_cifar", "vgg16_bn", "resnet18")
WAYS = ("update", "penalty", "none")


def _as_penalty(network, *args, **kwargs):
    """The reference: each factor as an L2 regulariser on its variable; no decay left for the optimizer."""
    factors = weight_decay.decay_factors(network, *args, **kwargs)
    for variable in network.weights:
        if variable.path in factors:
            variable.regularizer = keras.regularizers.L2(factors[variable.path] / 2.0)
    return {}


def candidate(config, batch_size, way, precision, args):
    optim = config.optim if way != "none" else dataclasses.replace(config.optim, weight_decay=0.0,
                                                                     decay_norm_and_bias=False)

    def build():
        return keras_candidate(config.model, precision, False, batch_size, 1, args.image_size, args.steps,
                               optim=optim, model_options=config.model_options)[0]

    if way == "penalty":
        with mock.patch.object(build_module, "decay_factors", _as_penalty):
            return build()
    return build()


def bench(model, args, precision):
    config = RunConfig.from_flags(model, recipe=args.recipe)
    if not config.optim.weight_decay or config.optim.optimizer == "adamw":
        raise ConfigError(f"{model}'s {config.recipe} recipe has no coupled weight decay to place")
    batch_size = args.batch_size or config.data.batch_size
    runs = {way: candidate(config, batch_size, way, precision, args) for way in WAYS}
    seconds = interleaved(runs, args.repeats)
    median = {way: statistics.median(s) for way, s in seconds.items()}
    return {
        "model": model, "recipe": config.recipe, "batch_size": batch_size, "precision": precision,
        "weight_decay": config.optim.weight_decay, "seconds": seconds,
        "ms_per_step": {way: 1000 * m / args.steps for way, m in median.items()},
        "images_per_s": {way: batch_size * args.steps / m for way, m in median.items()},
        "penalty_over_update": median["penalty"] / median["update"],
    }


def main(argv=None):
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", default=list(DEFAULT_MODELS), metavar="MODEL")
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--batch-size", type=int, help="instead of the recipe's")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--precision", default="auto", help="auto (fit's default on this machine) or a Keras policy")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    precision = default_precision()[0] if args.precision == "auto" else args.precision
    rows = []
    print("| model (recipe, batch) | precision | ms/step: update | penalty | none | penalty / update |\n"
          "|---|---|---|---|---|---|")
    for model in args.models:
        try:
            row = bench(model, args, precision)
        except ConfigError as error:
            print(f"decay_in_update.py: {error}", file=sys.stderr)
            return 2
        rows.append(row)
        ms = row["ms_per_step"]
        print(f"| {model} ({row['recipe']}, {row['batch_size']}) | {precision} | {ms['update']:.1f} "
              f"| {ms['penalty']:.1f} | {ms['none']:.1f} | {row['penalty_over_update']:.3f}x |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"repeats": args.repeats, "steps": args.steps, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
