"""Seconds per training epoch of CIFAR-10 models on this machine.

    python benchmarks/epoch_time.py vgg16_bn vgg11 [--batch-size 128] [--steps 5] [--repeats 3] [--jit]

For each model: the product's own pipeline (real CIFAR-10 JPEGs from
$KERASCNN_CIFAR10_DIR, else the synthetic set at the same 32x32 size), model,
SGD optimiser and compile settings; a warm-up of 2 steps (tracing), then
`--repeats` timings of `--steps` training steps. The median step time times
the steps of a full CIFAR-10 epoch (45,000 training images after the 10%
validation split, in full batches) gives seconds per epoch; a full epoch
itself takes tens of minutes on a 2-core CPU.

The reference measured in the same run is the float32 matmul rate of this
machine (4096x4096 in TensorFlow): each model's achieved rate is reported as
a fraction of it. Training FLOPs per image are taken as 3x the forward
multiply-accumulates x 2 (forward, plus two backward products of the same
size), the usual estimate; the forward count is exact, from the layer shapes.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

from kerascnn.cli.flags import OneLineParser  # noqa: E402  (one-line argparse errors, exit 2)
from kerascnn.runtime.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerascnn.analysis.macs import forward_macs  # noqa: E402
from kerascnn.config import DataConfig, OptimConfig  # noqa: E402
from kerascnn.data.pipeline import make_datasets  # noqa: E402
from kerascnn.data.choose_source import open_source  # noqa: E402
from kerascnn.training.build import build_models  # noqa: E402
from timing import matmul_gflops, median_seconds  # noqa: E402, F401  (matmul_gflops: re-exported)

CIFAR_TRAIN_AFTER_SPLIT = 45_000


def time_model(name, source, batch_size, steps, repeats, jit=False, strategy=None):
    """(median seconds per training step, achieved GFLOP/s) of `name` at global `batch_size`.

    The model is built and compiled inside `strategy` (the default one when
    None), so `benchmarks/scaling.py` times replicated training the same way.
    """
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(0)
    data = make_datasets(source, DataConfig(batch_size=batch_size, limit_train=batch_size * 10), batch_size, seed=0)
    with strategy.scope():
        network, model, inference = build_models(
            name, source.info.num_classes, (32, 32, 3), {}, OptimConfig(), data.steps_per_epoch, 30, jit
        )
    train = data.train.repeat()
    model.fit(train, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)  # trace
    step = median_seconds(
        lambda: model.fit(train, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False), repeats
    ) / steps  # one more warm-up fit, then `repeats` timings
    train_flops = 3 * 2 * forward_macs(inference) * batch_size
    return step, train_flops / step / 1e9


def main(argv=None):
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jit", action="store_true", help="compile the train step with XLA")
    args = parser.parse_args(argv)

    cifar = os.environ.get("KERASCNN_CIFAR10_DIR")
    source = open_source(data_dir=cifar) if cifar else open_source(dataset="synthetic")
    peak = matmul_gflops()
    steps_per_epoch = CIFAR_TRAIN_AFTER_SPLIT // args.batch_size
    print(f"data: {source.info.name}; batch {args.batch_size}; {os.cpu_count()} CPU cores; "
          f"TensorFlow {tf.__version__}; XLA {'on' if args.jit else 'off'}; "
          f"float32 matmul reference {peak:.1f} GFLOP/s")
    print(f"| model | s/step (median of {args.repeats}x{args.steps}) | images/s | s/epoch (45k images) "
          "| GFLOP/s | of matmul |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        step, gflops = time_model(name, source, args.batch_size, args.steps, args.repeats, args.jit)
        print(f"| {name} | {step:.3f} | {args.batch_size / step:.1f} | {step * steps_per_epoch:.0f} "
              f"| {gflops:.1f} | {gflops / peak:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
