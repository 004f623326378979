"""Batch-1 dense products in float32, bfloat16 and int8: would narrower weights serve faster?

At batch 1 a dense layer is a matrix-vector product: every weight is read once
for two flops, so the time is the weight bytes over the memory bandwidth the
kernel reaches. bfloat16 weights are half the bytes of float32 ones, so a
bfloat16-weight export of alexnet_cifar (fc6 + fc7 hold 27 M of its 35 M
weights) would answer a batch-1 call faster only if TensorFlow's bfloat16
product reads memory at least half as fast as its float32 one. This script
times x @ W1 @ W2 (two 4096x4096 layers, fc7's shape) in each dtype inside
one `tf.function` and prints the p50 and the bandwidth it implies
(benchmarks/NOTES.md, 32). int8 is Keras 3's own quantized `Dense`
(`layer.quantize("int8")`: int8 weights with a scale per output column,
the input quantized per row on each call, an int8 x int8 -> int32 product,
then the scales), a quarter of float32's bytes (NOTES, 60).

Each float dtype is timed twice: the bare products, and each followed by its
bias (`tf.nn.bias_add`), which is what a Dense layer computes and what
TensorFlow's oneDNN pass fuses into one `_MklFusedMatMul` kernel. The two
differ: on an AMX Xeon the bare bfloat16 product took 1.5x float32's time
and the fused one 0.6x (NOTES, 65), so a bfloat16 export is judged by the
second.

    python benchmarks/batch1_matmul.py [--size 4096] [--calls 200]
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from kerascnn.cli.flags import OneLineParser  # noqa: E402  (one-line argparse errors, exit 2)
from kerascnn.runtime.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# (dtype, with a bias after each product) in the order printed; int8 is Keras' layer, without one.
PRODUCTS = ((tf.float32, False), (tf.float32, True), (tf.bfloat16, False), (tf.bfloat16, True), (tf.int8, False))


def two_dense_layers(size):
    """x @ W1 @ W2 as a Keras model of two float32 Dense layers; `.quantize("int8")` makes them Keras' int8 ones."""
    inputs = keras.Input((size,))
    x = inputs
    for seed in (1, 2):
        x = keras.layers.Dense(size, use_bias=False, dtype="float32",
                               kernel_initializer=keras.initializers.RandomNormal(seed=seed))(x)
    return keras.Model(inputs, x)


def quantize_int8(model):
    """`model` with each Dense layer quantized by Keras (`Dense.quantize("int8")`), in place; returned.

    Layer by layer rather than `Model.quantize`, which warns for the input layer.
    """
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            layer.quantize("int8")
    return model


def time_products(dtype, size, calls, warmup=20, bias=False):
    """Seconds of each of `calls` batch-1 calls of x @ W1 @ W2 in `dtype` (after `warmup` calls).

    `bias`: each product followed by a bias, as in a Dense layer (float dtypes only).
    """
    if dtype == tf.int8:
        model = quantize_int8(two_dense_layers(size))
        product, x = tf.function(lambda x: model(x, training=False)), tf.random.normal([1, size], seed=3)
    else:
        w1 = tf.Variable(tf.cast(tf.random.normal([size, size], seed=1), dtype))
        w2 = tf.Variable(tf.cast(tf.random.normal([size, size], seed=2), dtype))
        x = tf.cast(tf.random.normal([1, size], seed=3), dtype)
        if bias:
            b1, b2 = (tf.Variable(tf.cast(tf.random.normal([size], seed=s), dtype)) for s in (4, 5))
            product = tf.function(lambda x: tf.nn.bias_add(tf.matmul(tf.nn.bias_add(tf.matmul(x, w1), b1), w2), b2))
        else:
            product = tf.function(lambda x: tf.matmul(tf.matmul(x, w1), w2))
    for _ in range(warmup):
        product(x).numpy()
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        product(x).numpy()  # .numpy() waits for the result
        seconds.append(time.perf_counter() - start)
    return np.array(seconds)


def measure(dtype, size, calls, warmup=20, bias=False):
    """{"p50_ms", "weights_gb_per_s"} of x @ W1 @ W2 in `dtype`: the median call and the weight bytes it read per second."""
    p50 = float(np.median(time_products(dtype, size, calls, warmup, bias)))
    weight_bytes = 2 * size * size * dtype.size
    return {"p50_ms": 1000 * p50, "weights_gb_per_s": weight_bytes / p50 / 1e9}


def main(argv=None):
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="rows and columns of each weight matrix")
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args(argv)
    for dtype, bias in PRODUCTS:
        figures = measure(dtype, args.size, args.calls, bias=bias)
        label = dtype.name + (" + bias" if bias else "")
        print(f"{label}: p50 {figures['p50_ms']:.3f} ms, {figures['weights_gb_per_s']:.1f} GB/s of weights read")


if __name__ == "__main__":
    main()
