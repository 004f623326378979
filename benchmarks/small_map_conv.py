"""TensorFlow's convolution weight gradient against k*k matrix products on small maps (issue 19, NOTES.md 34).

    python benchmarks/small_map_conv.py [--precision mixed_bfloat16 float32] [--batch-size 128] \\
        [--shapes 4x512x512 2x512x512 ...] [--models vgg16_bn resnet18 ...] [--map-limits 16 64 ...] \\
        [--repeats 7] [--steps 2] [--json OUT]

NOTES.md 29a traced vgg16_bn's bfloat16 training step on a 2-core AVX512-BF16
CPU: TensorFlow's `Conv2DBackpropFilter` (oneDNN 3.7) took 1.6-2.3x PyTorch's
time for the 256-512-channel layers at 8x8, 4x4 and 2x2, the whole of the step's
gap to PyTorch. `kerascnn.layers.Conv2D` computes that gradient as k*k matrix
products (`kerascnn.layers.conv2d.weight_gradient`:
dL/dW[i, j] = X_ij^T dY, X_ij the input window shifted by (i, j)) on maps of at
most `SMALL_MAP_PIXELS` pixels. Two comparisons, round-robin timings
(`benchmarks/timing.py`), medians:

- `--shapes`: the kernel gradient alone, HxCinxCout (3x3 kernel, stride 1,
  "same"), `Conv2DBackpropFilter` against `weight_gradient` on the same random
  input and output gradient, each in its own tf.function, with their largest
  difference relative to the largest entry;
- `--models`: whole registered models as `fit` builds them
  (`throughput.keras_candidate`), with the builders' convolution class
  (`kerascnn.models.common.CONV2D`) set to Keras' `Conv2D` and to kerascnn's,
  the same batch in memory, `--steps` training steps per timing; the ratio
  keras / kerascnn of the medians (above 1: kerascnn's class is faster).
  `--map-limits` times kerascnn's class once per limit on the map size
  (`SMALL_MAP_PIXELS` patched while each is built and traced).
  Only at the precisions whose compute dtype takes the small-map gradient
  (`SMALL_MAP_DTYPES`: bfloat16); in float32 the two classes compute alike.
"""

import argparse
import contextlib
import functools
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

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerascnn.layers import Conv2D  # noqa: E402
from kerascnn.layers import conv2d  # noqa: E402
from kerascnn.layers.conv2d import SMALL_MAP_DTYPES, weight_gradient  # noqa: E402
from kerascnn.models import common  # noqa: E402
from throughput import train_runs_per_variant  # noqa: E402
from timing import cpu_name, interleaved, save_result  # noqa: E402

# vgg16_bn's layers at 8x8 and below on CIFAR-10 (size, in channels, out channels).
DEFAULT_SHAPES = ("8x256x256", "4x256x512", "4x512x512", "2x512x512")


def parse_shape(text):
    """'4x512x512' -> (4, 512, 512): map size, input channels, output channels."""
    try:
        size, channels, filters = (int(part) for part in text.split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a shape is SIZExCINxCOUT, e.g. 4x512x512. Received: {text!r}")
    return size, channels, filters


def gradient_candidates(shape, dtype, batch_size, steps):
    """{"keras": run, "kerascnn": run} of one kernel gradient, and their relative difference."""
    size, channels, filters = shape
    x = tf.cast(tf.random.stateless_normal((batch_size, size, size, channels), (0, 1)), dtype)
    dy = tf.cast(tf.random.stateless_normal((batch_size, size, size, filters), (0, 2)), dtype)
    functions = {
        "keras": tf.function(lambda x, dy: tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=[3, 3, channels, filters], out_backprop=dy, strides=[1, 1, 1, 1],
            padding="SAME")),
        "kerascnn": tf.function(lambda x, dy: weight_gradient(x, dy, (3, 3, channels, filters))),
    }
    results = {name: tf.cast(f(x, dy), "float32") for name, f in functions.items()}
    difference = float(tf.reduce_max(tf.abs(results["keras"] - results["kerascnn"]))
                       / tf.reduce_max(tf.abs(results["keras"])))

    def run(f):
        def timed():
            for _ in range(steps):
                grad = f(x, dy)
            float(tf.reduce_sum(tf.cast(grad[0, 0, 0], "float32")))  # waits for the last one
        return timed

    return {name: run(f) for name, f in functions.items()}, difference


def builders_conv2d(conv_class):
    """The VGG and ResNet builders' convolution class is `conv_class` inside the block."""
    return mock.patch.object(common, "CONV2D", conv_class)


@contextlib.contextmanager
def kerascnn_conv2d_up_to(pixels):
    """The builders' class is kerascnn's, its small-map gradient taken on maps of at most `pixels`."""
    with builders_conv2d(Conv2D), mock.patch.object(conv2d, "SMALL_MAP_PIXELS", pixels):
        yield


def limit_label(pixels):
    """The candidate name of a map limit: "kerascnn" for the shipped one, else "kerascnn_<N>px"."""
    return "kerascnn" if pixels == conv2d.SMALL_MAP_PIXELS else f"kerascnn_{pixels}px"


def model_candidates(name, precision, args):
    """{candidate: train_run} of registered model `name` as fit builds it: Keras' class, kerascnn's at each map limit."""
    variants = {"keras": functools.partial(builders_conv2d, keras.layers.Conv2D)}
    for pixels in args.map_limits:
        variants[limit_label(pixels)] = functools.partial(kerascnn_conv2d_up_to, pixels)
    return train_runs_per_variant(name, precision, variants, args.batch_size, args.image_size, args.steps)


def summarise(label, seconds, steps, batch_size):
    """One row per steps of interleaved timings: each candidate's ms and images/s, Keras' time over each other's."""
    medians = {name: statistics.median(times) / steps for name, times in seconds.items()}
    row = {
        "label": label,
        **{f"{name}_ms": 1000 * median for name, median in medians.items()},
        **{f"{name}_images_per_s": batch_size / median for name, median in medians.items()},
        "all_seconds": seconds,
    }
    row.update({f"keras_over_{name}": medians["keras"] / median for name, median in medians.items() if name != "keras"})
    return row


def main(argv=None):
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", nargs="+", default=["mixed_bfloat16", "float32"],
                        choices=["mixed_bfloat16", "float32"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--shapes", nargs="*", type=parse_shape, default=[parse_shape(s) for s in DEFAULT_SHAPES])
    parser.add_argument("--models", nargs="*", default=["vgg16_bn", "resnet18"])
    parser.add_argument("--map-limits", nargs="+", type=int, default=[conv2d.SMALL_MAP_PIXELS], metavar="PIXELS",
                        help="--models: kerascnn's class with the small-map gradient on maps of at most each of "
                        f"these many pixels (default: the shipped {conv2d.SMALL_MAP_PIXELS})")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args(argv)

    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {cpu_name()}, "
          f"load average {os.getloadavg()[0]:.2f}")
    result = {"tensorflow": tf.__version__, "keras": keras.__version__, "cpu": cpu_name(),
              "args": {**vars(args), "shapes": ["x".join(map(str, s)) for s in args.shapes]},
              "load_average_start": os.getloadavg(), "gradients": [], "models": []}
    for precision in args.precision:
        dtype = "bfloat16" if precision == "mixed_bfloat16" else "float32"
        for shape in args.shapes:
            runs, difference = gradient_candidates(shape, dtype, args.batch_size, args.steps)
            row = summarise(f"{'x'.join(map(str, shape))} {dtype}", interleaved(runs, args.repeats),
                            args.steps, args.batch_size)
            row["relative_difference"] = difference
            result["gradients"].append(row)
        for model in args.models if dtype in SMALL_MAP_DTYPES else ():
            runs = model_candidates(model, precision, args)
            result["models"].append(summarise(f"{model} {precision}", interleaved(runs, args.repeats),
                                              args.steps, args.batch_size))

    print(f"\nKernel gradient, 3x3, batch {args.batch_size} ({args.repeats} interleaved repeats of {args.steps})")
    print("| map x in x out, dtype | Conv2DBackpropFilter ms | matrix products ms | keras / kerascnn | difference |")
    print("|---|---|---|---|---|")
    for r in result["gradients"]:
        print(f"| {r['label']} | {r['keras_ms']:.1f} | {r['kerascnn_ms']:.1f} | {r['keras_over_kerascnn']:.2f}x "
              f"| {r['relative_difference']:.1e} |")
    print(f"\nTraining step as fit builds it, batch {args.batch_size}, {args.image_size}x{args.image_size}"
          f" (kerascnn's class with the small-map gradient up to {', '.join(map(str, args.map_limits))} pixels)")
    limits = [limit_label(p) for p in args.map_limits]
    print("| model, precision | keras.layers.Conv2D img/s | " + " | ".join(f"{n} img/s | keras / {n} time" for n in limits)
          + " |")
    print("|---|---|" + "---|---|" * len(limits))
    for r in result["models"]:
        print(f"| {r['label']} | {r['keras_images_per_s']:.1f} | "
              + " | ".join(f"{r[f'{n}_images_per_s']:.1f} | {r[f'keras_over_{n}']:.3f}x" for n in limits) + " |")
    save_result(result, args.json)


if __name__ == "__main__":
    main()
