"""kerascnn's training step with one-kernel optimizer updates against Keras' own, in one process.

    python benchmarks/fused_updates.py [MODEL:OPTIMIZER:BATCH[:SETUP] ...] [--repeats 5] [--steps 1]
        [--image-size 32] [--json OUT]

For each configuration (as `vs_torch.py` names them; default the seeds'
alexnet_cifar with Adam at batch 32 and 128), two candidates built
exactly as `fit` builds the step (`throughput.keras_candidate`), at `fit`'s
default precision: one with `kerascnn.training.fused_updates` for every
kind it can fuse (Adam, SGD with momentum, RMSprop; `build_optimizer` fuses
those in its `FUSED`) and one with Keras' chain of element-wise updates.
They are timed round-robin (`timing.interleaved`) on one fixed batch in
memory; the figure is the ratio of median step times (keras / fused: above 1
means the fused update is faster). NOTES.md, 23.
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

from throughput import keras_candidate  # noqa: E402
from timing import interleaved  # noqa: E402
from vs_torch import Config, default_precision  # noqa: E402

from kerascnn.training import fused_updates as fusing  # noqa: E402
from kerascnn.training import optim as optim_module  # noqa: E402

DEFAULT_CONFIGS = ("alexnet_cifar:adam:32:seeds", "alexnet_cifar:adam:128:seeds")


def candidate(config, precision, args, fused):
    """The training run of `config`, its optimizer fused (as `fit` builds it) or left as Keras builds it."""
    options, optim = config.keras_settings()

    def build():
        return keras_candidate(config.model, precision, False, config.batch_size, 1, args.image_size, args.steps,
                               optim=optim, model_options=options)[0]

    if fused:  # every kind the module can fuse, whether or not the product fuses it today
        with mock.patch.object(fusing, "FUSED", fusing.KINDS):
            return build()
    with mock.patch.object(optim_module, "fuse_updates", lambda optimizer: optimizer):
        return build()


def bench(config, precision, args):
    runs = {"fused": candidate(config, precision, args, True), "keras": candidate(config, precision, args, False)}
    seconds = interleaved(runs, args.repeats)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    return {
        "config": str(config), "precision": precision, "seconds": seconds,
        "images_per_s": {name: config.batch_size * args.steps / m for name, m in median.items()},
        "keras_over_fused": median["keras"] / median["fused"],
    }


def main(argv=None):
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", type=Config.parse, metavar="MODEL:OPTIMIZER:BATCH[:SETUP]")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    configs = args.configs or [Config.parse(c) for c in DEFAULT_CONFIGS]
    precision = default_precision()[0]
    rows = []
    print("| configuration | precision | fused img/s | keras img/s | keras / fused |\n|---|---|---|---|---|")
    for config in configs:
        row = bench(config, precision, args)
        rows.append(row)
        rates = row["images_per_s"]
        print(f"| {row['config']} | {precision} | {rates['fused']:.1f} | {rates['keras']:.1f} "
              f"| {row['keras_over_fused']:.2f}x |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"repeats": args.repeats, "steps": args.steps, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
