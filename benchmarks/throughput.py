"""Training and inference images per second, against the machine's peak and PyTorch.

    python benchmarks/throughput.py alexnet_cifar vgg16_bn resnet18 \\
        [--batch-size 128] [--infer-batch-size 512] [--image-size 32] \\
        [--precision float32 mixed_bfloat16 mixed_float16] [--jit on off] \\
        [--torch] [--repeats 5] [--steps 2] [--quick] [--json OUT]

For each model, every precision x XLA setting asked for is built and
compiled exactly as `fit` does (`kerascnn.training.build.build_models`: the model,
its L2 weight decay, SGD with momentum 0.9, cross-entropy on logits, the
metrics) and fed one fixed synthetic batch from memory, so the figure is
the training step itself (the product's input pipeline is timed by
`benchmarks/pipeline.py` and runs far ahead of these steps):

- train images/s: `--steps` training steps per timing, each a call of the
  train function `model.fit` compiled (as in fit's epoch loop);
- inference images/s: one `predict_on_batch` of `--infer-batch-size` images.

With `--torch` the same architecture in plain eager PyTorch
(`benchmarks/torch_reference.py`: same layers, parameter counts asserted
equal, same optimizer, loss and batch sizes, NCHW, all CPU threads; float32,
inference under `torch.no_grad()` in eval mode) is timed in its own process
(`torch_reference.Worker`; in one run, sharing TensorFlow's process had
been up to 25% slower, NOTES.md 9), taking turns with the kerascnn
candidates, and the ratio
kerascnn / PyTorch is printed for training and for inference. In the
PyTorch rows that column shows the ceiling instead, `(<= Nx)`: the float32
peak over PyTorch's rate, the ratio a program running at 100% of the
measured peak would reach.

Timing (`benchmarks/timing.py`, the one method for both frameworks): one
warm-up call of every candidate (tracing, XLA compilation), then
`--repeats` rounds in which every candidate of a model is timed once,
round-robin, so noise on a shared machine hits all alike; medians are
reported.

FLOPs: forward FLOPs per image = 2 x the exact multiply-accumulates of the
conv and dense layers (`kerascnn.analysis.macs.forward_macs`); a training
step is counted as 3x the forward pass (forward, plus the two backward
products of the same size, gradient w.r.t. inputs and w.r.t. weights).
Normalisation, pooling and element-wise work are not counted, so the
fraction is a lower bound on how busy the machine is. The peak is measured
in the same run: a 4096 x 4096 matrix product in TensorFlow at the
precision's compute dtype (float32, bfloat16 or float16).
"""

import argparse
import json
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

from kerascnn.analysis.macs import forward_macs  # noqa: E402
from kerascnn.config import OptimConfig  # noqa: E402
from kerascnn.training.build import build_models  # noqa: E402
from kerascnn.training.context import precision_policy  # noqa: E402
from timing import interleaved, matmul_gflops  # noqa: E402

# The kerascnn options the PyTorch reference reproduces (other settings: each model's defaults).
MODEL_OPTIONS = {"alexnet_cifar": {"batch_norm": True}}
COMPUTE_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
NUM_CLASSES = 10
TORCH = "pytorch"


def _on_off(text):
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
    return text == "on"


def keras_candidate(name, precision, jit, batch_size, infer_batch_size, image_size, steps, seed=0, optim=None,
                    model_options=None, whole_fit=None):
    """(train_run, infer_run, forward MACs per image, trainable parameters) of kerascnn `name` as `fit` builds it.

    `optim` (an `OptimConfig`, default fit's: SGD) and `model_options` (default `MODEL_OPTIONS`) as `fit` takes them.
    `whole_fit`, a function of a `tf.data.Dataset`: each train_run is then one whole `model.fit` call of `steps`
    steps, as a script times training, on the batch through a pipeline of the product's shape (a parallel
    `map` and `prefetch(AUTOTUNE)`) that `whole_fit` finishes (e.g. `pipeline.without_autotuning`).
    """
    keras.utils.set_random_seed(seed)
    options = MODEL_OPTIONS.get(name, {}) if model_options is None else model_options
    with precision_policy(precision):  # the runtime phase's policy switch, the caller's restored
        network, model, inference = build_models(
            name, NUM_CLASSES, (image_size, image_size, 3), options, optim or OptimConfig(),
            steps_per_epoch=100, epochs=30, jit=jit,
        )
    if inference is not model:
        inference.compile(jit_compile=bool(jit))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, image_size, image_size, 3), dtype=np.float32)
    y = np.eye(NUM_CLASSES, dtype=np.float32)[rng.integers(0, NUM_CLASSES, batch_size)]
    x_infer = tf.constant(rng.standard_normal((infer_batch_size, image_size, image_size, 3), dtype=np.float32))
    train = tf.data.Dataset.from_tensors((x, y)).repeat()
    # One step through `fit` builds the optimizer and traces the train function;
    # the timings then call that function as fit's epoch loop does, without
    # fit's once-per-epoch setup (callbacks, iterator: ~35 ms, NOTES.md).
    model.fit(train, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
    if whole_fit is None:
        batches = iter(train)

        def train_run():
            for _ in range(steps):
                logs = model.train_function(batches)
            float(logs["loss"])  # waits for the last step
    else:
        fed = whole_fit(train.map(lambda a, b: (a, b), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))

        def train_run():  # the whole call, its iterator's creation and deletion included
            model.fit(fed, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)

    def infer_run():
        inference.predict_on_batch(x_infer)

    params = sum(int(np.prod(w.shape)) for w in inference.trainable_weights)
    return train_run, infer_run, forward_macs(inference), params


def train_runs_per_variant(name, precision, variants, batch_size, image_size, steps):
    """{label: train_run} of registered model `name` as fit builds it (fit's SGD), built inside each variant.

    `variants` maps a label to a function returning a context manager (a
    builder's layer class swapped, say); each model is built and traced
    inside its own, then timed outside it.
    """
    runs = {}
    for label, variant in variants.items():
        with variant():
            runs[label], _, _, _ = keras_candidate(
                name, precision, False, batch_size, batch_size, image_size, steps, optim=OptimConfig())
    return runs


def torch_candidate(name, batch_size, infer_batch_size, image_size, steps):
    """(train_run, infer_run, worker) of the PyTorch reference, in its own process (`torch_reference.Worker`)."""
    import torch_reference

    worker = torch_reference.Worker(name, batch_size, infer_batch_size, image_size)
    return (lambda: worker.train_steps(steps)), (lambda: worker.infer(1)), worker


def label(precision, jit):
    return f"{precision}, XLA {'on' if jit else 'off'}"


def bench_model(name, args, peaks):
    """Rows of the table for one model: every kerascnn candidate, then PyTorch."""
    train_runs, infer_runs, macs, keras_params = {}, {}, None, None
    settings = {}
    for precision in args.precision:
        for jit in args.jit:
            key = label(precision, jit)
            train_runs[key], infer_runs[key], macs, keras_params = keras_candidate(
                name, precision, jit, args.batch_size, args.infer_batch_size, args.image_size, args.steps
            )
            settings[key] = (precision, jit)
    worker = None
    if args.torch:
        train_runs[TORCH], infer_runs[TORCH], worker = torch_candidate(
            name, args.batch_size, args.infer_batch_size, args.image_size, args.steps
        )
        assert keras_params == worker.params, f"{name}: kerascnn {keras_params} != PyTorch {worker.params} parameters"
    try:
        train_s = interleaved(train_runs, args.repeats)
        infer_s = interleaved(infer_runs, args.repeats)
    finally:
        if worker is not None:
            worker.close()
    flops = 2 * macs
    rows = []
    for key in train_runs:
        train_rate = args.batch_size * args.steps / statistics.median(train_s[key])
        infer_rate = args.infer_batch_size / statistics.median(infer_s[key])
        precision, jit = settings.get(key, ("float32", False))
        peak = peaks[COMPUTE_DTYPE[precision]]
        row = {
            "model": name,
            "framework": "kerascnn" if key != TORCH else "pytorch",
            "precision": precision,
            "jit": jit if key != TORCH else None,
            "train_images_per_s": train_rate,
            "infer_images_per_s": infer_rate,
            "forward_gflops_per_image": flops / 1e9,
            "train_gflops_per_s": 3 * flops * train_rate / 1e9,
            "infer_gflops_per_s": flops * infer_rate / 1e9,
            "train_fraction_of_peak": 3 * flops * train_rate / 1e9 / peak,
            "infer_fraction_of_peak": flops * infer_rate / 1e9 / peak,
            "train_seconds": train_s[key],
            "infer_seconds": infer_s[key],
        }
        rows.append(row)
    if args.torch:
        ref = rows[-1]
        ref["torch_threads"], ref["torch_version"] = worker.num_threads, worker.version
        # The most any program could beat this reference by: running at 100% of the measured peak.
        ref["train_ceiling_vs_pytorch"] = 1 / ref["train_fraction_of_peak"]
        ref["infer_ceiling_vs_pytorch"] = 1 / ref["infer_fraction_of_peak"]
        for row in rows[:-1]:
            row["train_vs_pytorch"] = row["train_images_per_s"] / ref["train_images_per_s"]
            row["infer_vs_pytorch"] = row["infer_images_per_s"] / ref["infer_images_per_s"]
    return rows


def markdown(rows, peaks, args):
    lines = [
        "| model | framework | precision | XLA | train img/s | vs PyTorch | train % of peak "
        "| infer img/s | vs PyTorch | infer % of peak | fwd GFLOP/img |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = lambda k: f"{r[k]:.2f}x" if k in r else ""  # noqa: E731
        if r["framework"] == "pytorch":  # the PyTorch row shows the ceiling a kerascnn row could reach
            ratio = lambda k: f"(<= {r[k.replace('_vs_', '_ceiling_vs_')]:.2f}x)"  # noqa: E731
        xla = "" if r["jit"] is None else ("on" if r["jit"] else "off")
        lines.append(
            f"| {r['model']} | {r['framework']} | {r['precision']} | {xla} | {r['train_images_per_s']:.1f} "
            f"| {ratio('train_vs_pytorch')} | {100 * r['train_fraction_of_peak']:.0f}% "
            f"| {r['infer_images_per_s']:.1f} | {ratio('infer_vs_pytorch')} "
            f"| {100 * r['infer_fraction_of_peak']:.0f}% | {r['forward_gflops_per_image']:.3f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--infer-batch-size", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--precision", nargs="+", default=["float32"], choices=list(COMPUTE_DTYPE))
    parser.add_argument("--jit", nargs="+", type=_on_off, default=[False], metavar="on|off")
    parser.add_argument("--torch", action="store_true", help="also time the PyTorch reference, interleaved")
    parser.add_argument("--repeats", type=int, default=5, help="timings per candidate (median reported)")
    parser.add_argument("--steps", type=int, default=2, help="training steps per timing")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: batch 8, inference batch 16, 2 repeats of 1 step"
    )
    parser.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size, args.infer_batch_size, args.repeats, args.steps = 8, 16, 2, 1

    dtypes = sorted({COMPUTE_DTYPE[p] for p in args.precision} | {"float32"})
    peak_n = 512 if args.quick else 4096
    peaks = {d: matmul_gflops(n=peak_n, dtype=d) for d in dtypes}
    gpus = [
        tf.config.experimental.get_device_details(g).get("device_name", g.name)
        for g in tf.config.list_physical_devices("GPU")
    ]
    header = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads"
        f"{', GPU ' + ', '.join(gpus) if gpus else ''}; "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}; batch {args.batch_size} (train), "
        f"{args.infer_batch_size} (inference), {args.image_size}x{args.image_size}; "
        f"median of {args.repeats} interleaved timings of {args.steps} train step(s) / 1 inference batch; "
        "peak ("
        + ", ".join(f"{d} {peaks[d]:.0f} GFLOP/s" for d in dtypes)
        + f", {peak_n}^2 matmul); training FLOPs = 3 x forward"
    )
    rows = []
    for name in args.models:
        rows.extend(bench_model(name, args, peaks))
        print(f"done: {name}", file=sys.stderr, flush=True)
    if args.torch:
        ref = next(r for r in rows if r["framework"] == "pytorch")
        header += (
            f"; PyTorch {ref['torch_version']} eager float32, {ref['torch_threads']} threads, in its own process; "
            "PyTorch rows' ratio = ceiling (peak / PyTorch's rate)"
        )
    print(header)
    print()
    print(markdown(rows, peaks, args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"setup": header, "args": vars(args), "peaks_gflops": peaks, "rows": rows}, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
