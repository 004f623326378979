"""The exact GELU's training pass: Keras' element-wise chain against kerascnn.layers.GELU's fused loops.

    python benchmarks/gelu.py [--batch 1024] [--repeats 5] [--steps 3] [--precision mixed_bfloat16] [--json OUT]

Two measurements, each candidate timed in alternating rounds in one process
(the ratio is the figure, medians over the rounds):

1. the forward and backward pass of GELU alone on each map airbench94
   activates (31x31x24, 15x15x64, 7x7x256, 3x3x256 at the batch);
2. airbench94's whole training step (`train_on_batch`, SGD with Nesterov
   momentum, random images) with `kerascnn.models.airbench.GELU_LAYER` set to
   kerascnn's layer and to Keras' `Activation("gelu")`.

The gradients of the two are checked to agree before anything is timed.
"""

import argparse
import os
import statistics
import sys
import time
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

SHAPES = ((31, 31, 24), (15, 15, 64), (7, 7, 256), (3, 3, 256))


def keras_gelu_layer(name=None):
    import keras

    return keras.layers.Activation("gelu", name=name)


def op_candidates(dtype):
    import keras
    import tensorflow as tf

    from kerascnn.layers import GELU

    fused = GELU(dtype=dtype)

    def pass_of(fn):
        @tf.function
        def run(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                total = tf.reduce_sum(tf.cast(fn(x), tf.float32))
            return tape.gradient(total, x)

        return run

    return {"keras": pass_of(lambda x: keras.activations.gelu(x, approximate=False)),
            "kerascnn": pass_of(lambda x: fused(x, training=True))}


def time_rounds(candidates, call, repeats, steps):
    times = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, candidate in candidates.items():
            start = time.perf_counter()
            for _ in range(steps):
                call(candidate)
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def measure_ops(batch, dtype, repeats, steps, log=print):
    import numpy as np
    import tensorflow as tf

    candidates = op_candidates(dtype)
    rows = []
    for shape in SHAPES:
        x = tf.cast(tf.constant(np.random.default_rng(0).normal(size=(batch, *shape)).astype("float32")), dtype)
        grads = {name: tf.cast(c(x), tf.float32).numpy() for name, c in candidates.items()}
        worst = float(np.abs(grads["keras"] - grads["kerascnn"]).max())
        tolerance = 0.02 if dtype == "bfloat16" else 1e-5
        if worst > tolerance:
            raise AssertionError(f"the two GELU gradients differ by {worst} at {shape}")
        medians = time_rounds(candidates, lambda c: c(x).numpy(), repeats, steps)
        rows.append({"shape": list(shape), "keras_ms": round(1e3 * medians["keras"], 2),
                     "kerascnn_ms": round(1e3 * medians["kerascnn"], 2),
                     "speedup": round(medians["keras"] / medians["kerascnn"], 2), "max_grad_difference": worst})
        log(f"GELU forward+backward at {batch}x{'x'.join(map(str, shape))} {dtype}: Keras {rows[-1]['keras_ms']} ms, "
            f"kerascnn {rows[-1]['kerascnn_ms']} ms, {rows[-1]['speedup']}x")
    return rows


def measure_steps(batch, precision, repeats, steps, log=print):
    import keras
    import numpy as np

    from kerascnn.layers import GELU
    from kerascnn.models import airbench, create_model

    keras.mixed_precision.set_global_policy(precision)
    x = np.random.default_rng(0).normal(size=(batch, 32, 32, 3)).astype("float32")
    y = keras.utils.to_categorical(np.arange(batch) % 10, 10)
    models = {}
    for name, layer in (("keras", keras_gelu_layer), ("kerascnn", GELU)):
        airbench.GELU_LAYER = layer
        keras.utils.set_random_seed(0)
        model = create_model("airbench94")
        model.compile(keras.optimizers.SGD(0.1, momentum=0.85, nesterov=True),
                      keras.losses.CategoricalCrossentropy(from_logits=True))
        model.train_on_batch(x, y)  # trace and warm up
        models[name] = model
    airbench.GELU_LAYER = GELU
    medians = time_rounds(models, lambda m: m.train_on_batch(x, y), repeats, steps)
    row = {"batch": batch, "precision": precision, "keras_s": round(medians["keras"], 3),
           "kerascnn_s": round(medians["kerascnn"], 3), "speedup": round(medians["keras"] / medians["kerascnn"], 2)}
    log(f"airbench94 training step, batch {batch}, {precision}: Keras' GELU {row['keras_s']} s, "
        f"kerascnn's {row['kerascnn_s']} s, {row['speedup']}x ({batch / medians['kerascnn']:.0f} images/s)")
    return row


def parse_args(argv=None):
    from kerascnn.cli.flags import OneLineParser

    parser = OneLineParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--precision", choices=("mixed_bfloat16", "float32"), default="mixed_bfloat16")
    parser.add_argument("--no-steps", action="store_true", help="the GELU passes alone")
    parser.add_argument("--json", type=pathlib.Path, default=None)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from kerascnn.errors import ConfigError

    for flag in ("batch", "repeats", "steps"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag} {getattr(args, flag)}: must be at least 1")
    dtype = "bfloat16" if args.precision == "mixed_bfloat16" else "float32"
    result = {"command": " ".join(sys.argv), "ops": measure_ops(args.batch, dtype, args.repeats, args.steps)}
    if not args.no_steps:
        result["step"] = measure_steps(args.batch, args.precision, args.repeats, args.steps)
    if args.json:
        from kerascnn.storage.rundir import write_json

        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    from kerascnn.errors import script_exit_status

    sys.exit(script_exit_status(main, "gelu.py"))
