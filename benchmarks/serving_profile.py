"""Where a served batch-1 call's time goes: op profile, batch-norm folding, the dense-layer floor (issue 19).

    python benchmarks/serving_profile.py [MODEL] [--calls 300] [--rounds 3] [--profile-calls 50]
        [--json OUT] [--markdown OUT]

`serving_latency.py` compares the export with PyTorch; this script looks
inside kerascnn's own number, in one process, on a model at its random
initialisation with batch norm's statistics randomised (as a trained one's):

1. Two exports of the same weights through `kerascnn.serving.export`: the
   product's (its float32 signature with batch norm folded into the layer
   before it, `kerascnn.serving.fold_batch_norm`) and the same export with
   the fold switched off. Their batch-1 calls (uint8 in, probabilities
   out) are timed in blocks of `--calls`, alternating, for `--rounds`
   rounds; the figure is the median of the rounds' p50s.
2. TensorFlow's profiler over `--profile-calls` calls of the product's
   signature: self time per call by op type (framework_op_stats), and how
   much of the wall time the ops account for (the rest is the executor and
   the Python call).
3. The floor of the dense layers at batch 1: a [1, n] x [n, m] product
   reads its whole kernel for one image, so it is bound by memory
   bandwidth. The script times TensorFlow's products with all the model's
   dense kernels in one call (less an empty call's time): what no serving
   of these float32 weights can go under on this machine.
"""

import glob
import json
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from kerascnn.cli.flags import OneLineParser  # noqa: E402  (one-line argparse errors, exit 2)
from kerascnn.runtime.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch_reference  # noqa: E402  (the same model options as serving_latency.py)
from timing import cpu_name  # noqa: E402

from kerascnn.data.preprocessing import Preprocessing  # noqa: E402
from kerascnn.models import create_model  # noqa: E402
from kerascnn.serving import export  # noqa: E402
from kerascnn.testing import randomize_batch_norms  # noqa: E402

MEAN, STD = (125.3, 123.0, 113.9), (63.0, 62.1, 66.7)


def parse_args(argv=None):
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", default="alexnet_cifar")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--calls", type=int, default=300, help="batch-1 calls per candidate per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--profile-calls", type=int, default=50)
    p.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                   help="builder option (smoke runs: width_multiplier=0.125, fc_units=16)")
    p.add_argument("--json")
    p.add_argument("--markdown")
    return p.parse_args(argv)


def build(args):
    """The model with every batch norm's statistics and affine weights randomised, as after training."""
    options = dict(torch_reference.KERASCNN_OPTIONS.get(args.model, {}))
    for pair in args.set:
        key, _, value = pair.partition("=")
        options[key] = json.loads(value)
    model = create_model(args.model, num_classes=10, input_shape=(args.image_size, args.image_size, 3), **options)
    return randomize_batch_norms(model, seed=0)


def exports(model, folder):
    """{"folded": signature, "unfolded": signature} of the same weights; the first is the product's export."""
    prep = Preprocessing(model.input_shape[1:3], MEAN, STD)
    classes = [str(i) for i in range(10)]
    versions = {"folded": export.export_model(model, prep, classes, "folded", folder)}
    product_fold = export.fold_batch_norm
    export.fold_batch_norm = lambda served: (served, 0)  # the same export with the fold switched off
    try:
        versions["unfolded"] = export.export_model(model, prep, classes, "unfolded", folder)
    finally:
        export.fold_batch_norm = product_fold
    folded = json.loads((versions["folded"] / export.MANIFEST).read_text())["folded_batch_norm"]
    return {k: tf.saved_model.load(str(v)).signatures[export.SIGNATURE] for k, v in versions.items()}, folded


def p50s(signatures, image, calls, rounds):
    """{name: [p50 ms of each round]}, the candidates' blocks of `calls` alternating within each round."""
    out = {name: [] for name in signatures}
    for name, serve in signatures.items():
        for _ in range(10):
            serve(images=image)["probabilities"].numpy()
    for _ in range(rounds):
        for name, serve in signatures.items():
            seconds = []
            for _ in range(calls):
                start = time.perf_counter()
                serve(images=image)["probabilities"].numpy()
                seconds.append(time.perf_counter() - start)
            out[name].append(float(np.percentile(seconds, 50)) * 1e3)
    return out


def op_profile(serve, image, calls):
    """({op type: self ms per call}, wall ms per call) from TensorFlow's profiler."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    logdir = tempfile.mkdtemp(prefix="serving_profile_")
    try:
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        for _ in range(calls):
            serve(images=image)["probabilities"].numpy()
        wall = (time.perf_counter() - start) / calls * 1e3
        tf.profiler.experimental.stop()
        planes = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        data, _ = plugin.xspace_to_tools_data(planes, "framework_op_stats", {})
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    tables = json.loads(data)
    table = next(t for t in tables if "cols" in t)
    cols = [c["label"] for c in table["cols"]]
    kind, self_us = cols.index("Operation Type"), cols.index("Total self-time (us)")
    by_type = {}
    for row in table["rows"]:
        values = [c.get("v") if c else None for c in row["c"]]
        if values[kind] != "IDLE":
            by_type[values[kind]] = by_type.get(values[kind], 0.0) + values[self_us] / 1e3 / calls
    return dict(sorted(by_type.items(), key=lambda kv: -kv[1])), wall


def dense_floor(model, repeats=20):
    """([(dense layer, MB of kernel)], ms): TensorFlow's batch-1 products with all of them, in one call.

    The products run in one tf.function on independent inputs, and the time
    of an empty call is taken off, so the figure is the products' own.
    """
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    kernels = [tf.constant(layer.kernel.numpy()) for layer in layers]
    inputs = [tf.random.normal([1, k.shape[0]]) for k in kernels]
    products = tf.function(lambda xs: [tf.matmul(x, k) for x, k in zip(xs, kernels)])
    empty = tf.function(lambda xs: xs[0])
    for fn in (products, empty):
        fn(inputs)
    full = min(_seconds(lambda: [y.numpy() for y in products(inputs)]) for _ in range(repeats))
    overhead = min(_seconds(lambda: empty(inputs).numpy()) for _ in range(repeats))
    sizes = [(layer.name, k.shape.num_elements() * 4 / 1e6) for layer, k in zip(layers, kernels)]
    return sizes, max(full - overhead, 0.0) * 1e3


def _seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def markdown(report):
    lines = [f"{report['model']}, batch 1, float32, {report['cpu']}; {report['folded']} batch norms folded", "",
             "| export | p50 ms per round | median |", "|---|---|---|"]
    for name, values in report["p50_ms"].items():
        lines.append(f"| {name} | {' '.join(f'{v:.2f}' for v in values)} | {statistics.median(values):.2f} |")
    ops = report["op_ms_per_call"]
    summary = (f"Op self time of the product's signature: {sum(ops.values()):.2f} ms per call of "
               f"{report['profiled_wall_ms']:.2f} ms wall (under the profiler)")
    lines += ["", summary, "", "| op type | ms per call | share |", "|---|---|---|"]
    total = sum(ops.values()) or 1.0
    lines += [f"| {k} | {v:.3f} | {100 * v / total:.1f}% |" for k, v in ops.items() if v >= 0.005]
    megabytes = sum(mb for _, mb in report["dense_kernels_mb"])
    floor = report["dense_floor_ms"]
    lines += ["", f"Dense floor: {floor:.2f} ms for the batch-1 products of "
              + ", ".join(f"{name} ({mb:.1f} MB)" for name, mb in report["dense_kernels_mb"])
              + (f", {megabytes / floor:.1f} GB/s" if floor > 0 else "")]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    model = build(args)
    folder = pathlib.Path(tempfile.mkdtemp(prefix="serving_profile_exports_"))
    try:
        signatures, folded = exports(model, folder)
        image = tf.constant(np.random.default_rng(1).integers(0, 256, (1, args.image_size, args.image_size, 3),
                                                              dtype=np.uint8))
        report = {"model": args.model, "cpu": cpu_name(), "folded": folded,
                  "p50_ms": p50s(signatures, image, args.calls, args.rounds)}
        report["op_ms_per_call"], report["profiled_wall_ms"] = op_profile(signatures["folded"], image,
                                                                          args.profile_calls)
        report["dense_kernels_mb"], report["dense_floor_ms"] = dense_floor(model)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    text = markdown(report)
    print(text)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(text + "\n")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
