"""Keras 3's batch norm against TensorFlow's fused kernel, in a training step (issue 19, NOTES.md 16b).

    python benchmarks/fused_batchnorm.py [--precision float32 mixed_bfloat16] \\
        [--batch-size 128] [--image-size 32] [--blocks 2] [--repeats 9] [--steps 2] \\
        [--no-stack] [--no-layer] [--models vgg16_bn resnet18 ...] [--json OUT]

Keras 3's `BatchNormalization` on TensorFlow is not fused: in training it
casts the input up to float32, computes `tf.nn.moments` (a mean, a squared
difference, a second mean) and `tf.nn.batch_normalization` (element-wise
scale and shift), then casts back to the compute dtype; its gradient is
autodiff through all of these, several passes over every activation each way.
TensorFlow's `FusedBatchNormV3` (Ioffe & Szegedy 2015, Algorithm 1:
y = gamma * (x - mu_B) / sqrt(sigma_B^2 + eps) + beta) computes the batch
statistics and the output in one op, reads bfloat16 directly with float32
statistics, and has a one-op gradient (`FusedBatchNormGradV3`).
`kerascnn.layers.BatchNormalization` is Keras' layer calling it ("fused" below).

Three comparisons, keras against fused, at every `--precision`:

- stack: the start of `vgg16_bn` (kerascnn.models.vgg): `--blocks` stages of
  3x3 convolutions (64, 64 | 128, 128 | 256 x 3 | ...), each followed by batch
  norm and ReLU, 2x2 max pooling after each stage, then global average pooling
  and 10 float32 logits; two copies with the same weights, differing only in
  the batch-norm class, compiled as `fit` compiles (SGD momentum 0.9,
  cross-entropy on logits, no XLA);
- layer: one batch-norm layer alone, forward and backward of a 64-channel map
  at the first stage's size (how much of the step batch norm is);
- `--models`: whole registered models built by `fit`'s `build_models`
  (`benchmarks/throughput.py`'s candidate), with `kerascnn.models.common.BATCH_NORM`,
  the class every builder uses, set to each class in turn.

Each training candidate is timed by calling its compiled train function (one
tf.function per step: forward, backward, SGD update, moving statistics) on
one fixed batch in memory, `--steps` steps per timing. Timing
(`benchmarks/timing.py`): one warm-up per candidate, then `--repeats` rounds
in which every candidate of a comparison (both classes, every precision) is
timed once, round-robin, so load from other processes hits all alike; medians
per candidate and the ratio keras / fused of the medians (above 1: the fused
kernel is faster).
"""

import contextlib
import functools
import os
import platform
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

from kerascnn.cli.flags import OneLineParser  # noqa: E402  (one-line argparse errors, exit 2)
from kerascnn.runtime.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerascnn.layers import BatchNormalization as FusedBatchNormalization  # noqa: E402
from kerascnn.models import common  # noqa: E402
from kerascnn.models.common import BN_EPSILON, BN_MOMENTUM, CONV_INIT  # noqa: E402
from kerascnn.training.context import precision_policy  # noqa: E402
from throughput import train_runs_per_variant  # noqa: E402
from timing import interleaved, save_result  # noqa: E402

STAGES = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))  # vgg16's (convolutions, width)
NUM_CLASSES = 10


def check_bfloat16_kernel():
    """Whether FusedBatchNormV3 takes bfloat16 input on this CPU (eager and in a tf.function)."""
    x = tf.cast(tf.random.normal((2, 3, 3, 4)), "bfloat16")

    def fused(x):
        return tf.raw_ops.FusedBatchNormV3(
            x=x, scale=tf.ones((4,)), offset=tf.zeros((4,)), mean=tf.zeros((0,)), variance=tf.zeros((0,)),
            epsilon=BN_EPSILON, is_training=True,
        )

    try:
        eager = fused(x)
        graph = tf.function(fused)(x)
    except (tf.errors.OpError, TypeError) as error:
        return f"no: {type(error).__name__}: {str(error).splitlines()[0]}"
    return f"yes: output {eager[0].dtype.name} / {graph[0].dtype.name}, statistics {eager[1].dtype.name}"


def conv_stack(bn_class, blocks, image_size):
    """The first `blocks` stages of vgg16_bn with `bn_class` batch norm, a global pool and 10 logits."""
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = inputs
    for stage, (convs, width) in enumerate(STAGES[:blocks], start=1):
        for i in range(1, convs + 1):
            x = keras.layers.Conv2D(width, 3, padding="same", kernel_initializer=CONV_INIT,
                                    name=f"block{stage}_conv{i}")(x)
            x = bn_class(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"block{stage}_bn{i}")(x)
            x = keras.layers.ReLU(name=f"block{stage}_relu{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{stage}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    # Logits in float32 under mixed precision, as kerascnn's classifier_logits.
    outputs = keras.layers.Dense(NUM_CLASSES, dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"vgg16_bn_{blocks}blocks")


def train_candidates(precision, args):
    """{class name: train_run} of the two models under `precision`, same weights, same batch."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch_size, args.image_size, args.image_size, 3), dtype=np.float32)
    y = np.eye(NUM_CLASSES, dtype=np.float32)[rng.integers(0, NUM_CLASSES, args.batch_size)]
    batches = tf.data.Dataset.from_tensors((x, y)).repeat()
    models, runs = {}, {}
    for name, bn_class in (("keras", keras.layers.BatchNormalization), ("fused", FusedBatchNormalization)):
        keras.utils.set_random_seed(0)
        with precision_policy(precision):
            model = conv_stack(bn_class, args.blocks, args.image_size)
            model.compile(
                optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                jit_compile=False,
            )
        if models:  # the first model's initial weights (it has not trained yet)
            model.set_weights(next(iter(models.values())).get_weights())
        models[name] = model
    for name, model in models.items():
        # One step through fit traces the train function; the timings then call it as fit's loop does.
        model.fit(batches, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
        iterator = iter(batches)

        def run(model=model, iterator=iterator):
            for _ in range(args.steps):
                logs = model.train_function(iterator)
            float(logs["loss"])  # waits for the last step

        runs[name] = run
    # After the same first step from the same weights (inference: moving statistics, updated weights).
    losses = {name: float(m.evaluate(x, y, batch_size=args.batch_size, verbose=0)) for name, m in models.items()}
    return runs, losses


def layer_candidates(precision, args):
    """{class name: run} of one batch-norm layer alone: forward and backward, 64 channels at full size."""
    dtype = "bfloat16" if precision == "mixed_bfloat16" else "float32"
    x = tf.cast(tf.random.normal((args.batch_size, args.image_size, args.image_size, 64)), dtype)
    runs = {}
    for name, bn_class in (("keras", keras.layers.BatchNormalization), ("fused", FusedBatchNormalization)):
        with precision_policy(precision):
            layer = bn_class(momentum=BN_MOMENTUM, epsilon=BN_EPSILON)
            layer.build(x.shape)

        @tf.function(jit_compile=False)
        def step(x, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(tf.cast(y, "float32") ** 2)
            return tape.gradient(loss, [x] + layer.trainable_variables)

        def run(step=step):
            for _ in range(args.steps):
                grads = step(x)
            float(tf.reduce_sum(tf.cast(grads[0], "float32")))

        runs[name] = run
    return runs


@contextlib.contextmanager
def builders_batch_norm(bn_class):
    """Every kerascnn builder's batch norm is `bn_class` inside the block."""
    saved = common.BATCH_NORM
    common.BATCH_NORM = bn_class
    try:
        yield
    finally:
        common.BATCH_NORM = saved


def model_candidates(name, precision, args):
    """{class name: train_run} of registered model `name` as fit builds it, with each batch-norm class."""
    variants = {label: functools.partial(builders_batch_norm, bn_class)
                for label, bn_class in (("keras", keras.layers.BatchNormalization), ("fused", FusedBatchNormalization))}
    return train_runs_per_variant(name, precision, variants, args.batch_size, args.image_size, args.steps)


def summarise(seconds, keys, steps, batch_size):
    """Rows {precision, class, median step s, img/s, keras/fused} from interleaved timings."""
    rows = []
    for precision in keys:  # a precision, or a (model, precision) pair
        medians = {name: statistics.median(seconds[(precision, name)]) / steps for name in ("keras", "fused")}
        for name, median in medians.items():
            rows.append({
                "precision": precision, "batch_norm": name, "median_step_s": median,
                "images_per_s": batch_size / median, "all_step_s": [s / steps for s in seconds[(precision, name)]],
                "keras_over_fused": medians["keras"] / medians["fused"],
            })
    return rows


def print_table(title, rows):
    print(f"\n{title}")
    print("| precision | batch norm | median step ms | img/s | keras / fused |")
    print("|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['keras_over_fused']:.3f}x" if r["batch_norm"] == "fused" else ""
        precision = r["precision"] if isinstance(r["precision"], str) else " ".join(r["precision"])
        print(f"| {precision} | {r['batch_norm']} | {1000 * r['median_step_s']:.1f} "
              f"| {r['images_per_s']:.1f} | {ratio} |")


def main(argv=None):
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--blocks", type=int, default=2, choices=range(1, 6))
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--no-stack", action="store_true", help="skip the vgg16_bn-stack timing")
    parser.add_argument("--no-layer", action="store_true", help="skip the batch-norm-layer-alone timing")
    parser.add_argument("--models", nargs="*", default=[], help="registered models to time whole")
    parser.add_argument("--json")
    args = parser.parse_args(argv)

    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    bf16 = check_bfloat16_kernel()
    print(f"FusedBatchNormV3 takes bfloat16 on CPU: {bf16}")
    result = {"tensorflow": tf.__version__, "keras": keras.__version__, "bfloat16_kernel": bf16,
              "args": vars(args), "load_average_start": os.getloadavg()}

    if not args.no_stack:
        step_runs, losses = {}, {}
        for precision in args.precision:
            runs, losses[precision] = train_candidates(precision, args)
            step_runs.update({(precision, name): run for name, run in runs.items()})
            print(f"{precision}: loss after the first step, keras {losses[precision]['keras']:.5f}, "
                  f"fused {losses[precision]['fused']:.5f}")
        result["step"] = summarise(interleaved(step_runs, args.repeats), args.precision, args.steps,
                                   args.batch_size)
        print_table(f"Training step, first {args.blocks} stages of vgg16_bn, batch {args.batch_size}, "
                    f"{args.image_size}x{args.image_size} ({args.repeats} interleaved repeats of "
                    f"{args.steps} steps)", result["step"])
    if not args.no_layer:
        layer_runs = {}
        for precision in args.precision:
            layer_runs.update({(precision, name): run for name, run in layer_candidates(precision, args).items()})
        result["layer"] = summarise(interleaved(layer_runs, args.repeats), args.precision, args.steps,
                                    args.batch_size)
        print_table(f"One batch-norm layer, forward + backward, {args.batch_size}x{args.image_size}x"
                    f"{args.image_size}x64", result["layer"])
    for model in args.models:
        model_runs = {}
        for precision in args.precision:
            model_runs.update({((model, precision), name): run
                               for name, run in model_candidates(model, precision, args).items()})
        keys = [(model, precision) for precision in args.precision]
        result.setdefault("models", []).extend(
            summarise(interleaved(model_runs, args.repeats), keys, args.steps, args.batch_size))
        print_table(f"Training step, {model} as fit builds it, batch {args.batch_size}, "
                    f"{args.image_size}x{args.image_size}", result["models"][-2 * len(keys):])
    save_result(result, args.json)


if __name__ == "__main__":
    main()
