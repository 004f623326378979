"""Images per second at 1 and 2 replicas (MirroredStrategy), and the ratio.

    python benchmarks/scaling.py [vgg16_bn resnet18] [--global-batch 128] [--steps 3] [--repeats 3] [--gpus]

Each model trains on the product's pipeline (real CIFAR-10 from
$KERASCNN_CIFAR10_DIR, else the synthetic set), SGD, float32, at the same
global batch under each strategy: one device, then two replicas of half the
batch each, so the ratio is the pure cost or gain of replication.

Without `--gpus` the replicas are two logical CPU devices (`--cpu-replicas`):
they share this machine's cores, so the ratio measures the overhead of the
mirrored code path (splitting batches, all-reducing gradients), not a
speed-up. With `--gpus` they are the first two GPUs.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

from kerascnn.cli.flags import OneLineParser  # noqa: E402  (one-line argparse errors, exit 2)
from kerascnn.runtime.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

import tensorflow as tf  # noqa: E402

from epoch_time import time_model  # noqa: E402
from kerascnn.data.choose_source import open_source  # noqa: E402
from kerascnn.runtime.strategies import select_strategy, split_cpu  # noqa: E402


def images_per_second(name, source, strategy, global_batch, steps, repeats):
    step, _ = time_model(name, source, global_batch, steps, repeats, strategy=strategy)
    return global_batch / step


def main(argv=None):
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["vgg16_bn", "resnet18"])
    parser.add_argument("--global-batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gpus", action="store_true", help="replicas on GPUs instead of logical CPU devices")
    args = parser.parse_args(argv)

    if not args.gpus:
        split_cpu(2)  # before TensorFlow's runtime starts
    cifar = os.environ.get("KERASCNN_CIFAR10_DIR")
    source = open_source(data_dir=cifar) if cifar else open_source(dataset="synthetic")
    if args.gpus:
        strategies = [select_strategy("1"), select_strategy("2")]
    else:
        strategies = [select_strategy("cpu"), select_strategy("auto", cpu_replicas=2)]
    print(
        f"data: {source.info.name}; global batch {args.global_batch}; {os.cpu_count()} CPU cores; "
        f"TensorFlow {tf.__version__}; replicas on {'GPUs' if args.gpus else 'logical CPU devices'}"
    )
    print("| model | 1 replica (images/s) | 2 replicas (images/s) | ratio 2/1 |")
    print("|---|---|---|---|")
    for name in args.models:
        rates = [
            images_per_second(name, source, strategy, args.global_batch, args.steps, args.repeats)
            for strategy, _ in strategies
        ]
        print(f"| {name} | {rates[0]:.1f} | {rates[1]:.1f} | {rates[1] / rates[0]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
