"""Inference as served: kerascnn's exported SavedModel against PyTorch at its best, on the same weights (issue 19).

    python benchmarks/serving_latency.py [MODEL ...] [--precision auto [float32 ...]]
        [--serving-precision float32 [bfloat16 trained]] [--calls 1000] [--rounds 5]
        [--batch 256] [--batch-calls 5] [--warmup-calls 10] [--torch-modes MODE ...] [--torch-threads N]
        [--int8] [--export-dir DIR] [--quick] [--json OUT] [--markdown OUT]

For each model (default: alexnet_cifar, vgg16_bn, resnet18, googlenet_cifar at
32x32, 10 classes):

1. Weights: the PyTorch reference (`torch_reference.py`) at its random
   initialisation, batch norm's scale, shift and running statistics
   randomised too, is copied into kerascnn's model
   (`torch_reference.copy_to_keras`, kerascnn's own torchvision
   conversions) built under each `--precision` (default `auto`, what `fit`
   trains and therefore exports in: mixed_bfloat16 on CPUs with AMX or
   AVX512-BF16; `--precision auto float32` adds the float32 export, timed
   in the same rounds). Each is exported as `--serving-precision` says:
   float32 (the product's default: a mixed-precision model's float32 copy,
   the same weights without per-call casts), `bfloat16` (the weights
   stored in bfloat16, labelled "PRECISION served in bfloat16") and/or
   `trained` (labelled "PRECISION served as trained"). The first is
   "kerascnn" in the ratios.
2. The product's export (`kerascnn.serving.export.export_model`, what
   `python main.py export RUN_DIR` writes: the SavedModel whose `serve`
   signature takes uint8 images, normalises them and returns
   probabilities; verified on reload) with CIFAR-10's usual mean and std,
   loaded back with `tf.saved_model.load`.
3. PyTorch: the same state dict in eval mode under `torch.inference_mode()`
   (`torch_serving.py`), the same uint8 images, the same normalisation and
   softmax inside the timed call, in each of `--torch-modes` (float32,
   channels_last, bf16 autocast, both, torch.compile alone and with both,
   and the model converted to bfloat16 weights alone, with channels_last,
   and compiled: `torch_serving.SERVING_MODES`), each mode in its own
   process; a mode that fails here is "unavailable".
4. Same weights, checked: the logits of kerascnn's model in float32 against
   PyTorch float32 eager on `--check-images` images (they must agree to
   float32 rounding), and every mode's probabilities against the
   SavedModel's (max difference and top-1 agreement; bfloat16 differs by
   its rounding).
5. Timing, in `--rounds` rounds; in each round every candidate in turn
   makes `--calls` batch-1 calls (after `--warmup-calls` untimed ones, 10)
   and then `--batch-calls` calls of `--batch` images (after 2 untimed). Blocks of
   calls, not call-by-call alternation: a batch-1 call takes milliseconds,
   and one framework's worker threads still spinning after its call would
   otherwise land in the other's timing. Each round's p50 and p99 of the
   batch-1 calls and median batch time; the figures are the medians over
   the rounds. PyTorch's best is the mode with the lowest p50 (latency) and
   the highest images/s (batch), each taken from the same run.

6. `--int8`: both frameworks' int8 deployments join the same rounds:
   kerascnn's TensorFlow Lite int8 export (`kerascnn.serving.tflite.convert`,
   what `export RUN_DIR --format tflite --quantize int8` writes, run by the
   TFLite interpreter with XNNPACK on every core; uint8 to float32, the
   model, softmax inside the timed call) and PyTorch's post-training static
   int8 (`torch_serving.INT8`), both calibrated on the same
   `torch_serving.CALIBRATION_IMAGES` images. They are compared with each
   other and with the float candidates, never counted as "PyTorch's best"
   of the float exports: int8 reads a quarter of the bytes and rounds every
   weight, a different trade.

Targets: kerascnn's batch-1 p50 <= 0.8x PyTorch's best p50 (float modes);
batch throughput reported as a ratio.
"""

import json
import os
import pathlib
import platform
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

from kerascnn.cli.flags import OneLineParser  # noqa: E402  (one-line argparse errors, exit 2)
from kerascnn.runtime.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402

import torch_reference  # noqa: E402
import torch_serving  # noqa: E402
from timing import print_report  # noqa: E402
from kerascnn.data.cifar_binary import CIFAR10_CLASSES  # noqa: E402
from kerascnn.data.preprocessing import Preprocessing  # noqa: E402
from kerascnn.models import create_model  # noqa: E402
from kerascnn.runtime import hardware  # noqa: E402
from kerascnn.serving.export import SIGNATURE, export_model  # noqa: E402
from kerascnn.serving.interpreter import LiteModel  # noqa: E402
from kerascnn.serving.precision import float32_model  # noqa: E402
from kerascnn.serving.tflite import convert as convert_tflite  # noqa: E402
from kerascnn.training.context import precision_policy  # noqa: E402

DEFAULT_MODELS = ("alexnet_cifar", "vgg16_bn", "resnet18", "googlenet_cifar")
# CIFAR-10's per-channel training mean and standard deviation (0-255 scale), as `fit` measures them.
MEAN = (125.307, 122.950, 113.865)
STD = (62.993, 62.089, 66.705)
KERAS = "kerascnn"
TARGET_P50 = 0.8
QUICK_MODES = ("float32", "channels_last+bf16")
LOGITS_TOLERANCE = 1e-4  # relative to the largest logit: float32 rounding, two summation orders
LITE_INT8 = f"{KERAS} tflite int8"
TORCH_INT8 = f"pytorch {torch_serving.INT8}"


def percentile(seconds, q):
    return float(np.percentile(np.asarray(seconds) * 1e3, q))


def reference_weights(name, folder, seed=0):
    """(PyTorch reference at its random initialisation, batch norm randomised too; its state-dict file)."""
    torch.manual_seed(seed)
    reference = torch_reference.create(name)
    torch_reference.randomize_statistics(reference, seed)
    state_dict = folder / f"{name}.pt"
    torch.save(reference.state_dict(), state_dict)
    return reference, state_dict


SERVED = {"float32": "", "bfloat16": " served in bfloat16", "trained": " served as trained"}


def export_label(precision, serving):
    """The candidate's name: the training precision, and how the export computes when not the default float32."""
    return precision + SERVED[serving]


def label_parts(label):
    """(training precision, serving precision) of an `export_label`."""
    for serving, suffix in SERVED.items():
        if suffix and label.endswith(suffix):
            return label.removesuffix(suffix), serving
    return label, "float32"


def export_same_weights(name, reference, label, image_size, folder):
    """(SavedModel version folder, kerascnn model, Preprocessing): `reference`'s weights exported by the product.

    `label` is `export_label(precision, serving)`: the model is built under
    `precision` and exported with `serving_precision=serving`.
    """
    precision, serving = label_parts(label)
    with precision_policy(precision):
        model = create_model(
            name, num_classes=torch_reference.NUM_CLASSES, input_shape=(image_size, image_size, 3),
            **torch_reference.KERASCNN_OPTIONS[name],
        )
    torch_reference.copy_to_keras(name, reference, model)
    preprocessing = Preprocessing((image_size, image_size), MEAN, STD)
    version = export_model(model, preprocessing, list(CIFAR10_CLASSES), name,
                           folder / "exports" / label.replace(" ", "-"), serving_precision=serving)
    return version, model, preprocessing


class SavedModelCandidate:
    """The export's `serve` signature, timed in this process as `torch_serving.Predictor` times PyTorch."""

    def __init__(self, version, images):
        self.serve = tf.saved_model.load(str(version)).signatures[SIGNATURE]
        self.images = images

    def predict(self, batch):
        return self.serve(images=batch)["probabilities"].numpy()

    def inputs(self, batch):
        return tf.constant(self.images[:batch])

    def timings(self, batch, calls, warmup=10):
        images = self.inputs(batch)
        for _ in range(warmup):
            self.predict(images)
        seconds = []
        for _ in range(calls):
            start = time.perf_counter()
            self.predict(images)
            seconds.append(time.perf_counter() - start)
        return seconds


class LiteCandidate(SavedModelCandidate):
    """The TensorFlow Lite int8 export of `model` (float32) in the interpreter, served as the SavedModel serves.

    The call takes the uint8 batch, casts it to float32 (the `.tflite` file's
    input; the normalisation is inside it), runs the interpreter and returns
    softmax probabilities, all inside the timed call.
    """

    def __init__(self, model, preprocessing, images, calibration):
        self.content = convert_tflite(model, preprocessing, "int8", calibration=calibration, name="the model")
        self.lite = LiteModel(content=self.content)
        self.images = images

    def predict(self, batch):
        logits = self.lite.logits(batch.astype(np.float32), batch_size=len(batch))
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def inputs(self, batch):
        return self.images[:batch]


def int8_comparison(figures, float_best, expected, lite, checks, images):
    """The int8 candidates against each other, the float candidates, and the float32 export's predictions.

    `float_best`: the key of PyTorch's fastest float mode at batch 1;
    `expected`: the float32 SavedModel's probabilities of `images`; `checks`:
    `check_same_weights`'s, which compared PyTorch's int8 mode with them.
    "top1_agreement" of each int8 candidate with the float32 export (int8
    rounds every weight and activation, so it is below 1 on random weights
    where logits are close).
    """
    ours = figures[LITE_INT8]
    result = {
        "p50_vs_pytorch_best_float": ours["p50_ms"] / figures[float_best]["p50_ms"],
        "pytorch_best_float_mode": float_best.removeprefix("pytorch "),
        "tflite_bytes": len(lite.content),
        "tflite_top1_agreement_with_float32": float(np.mean(lite.predict(images).argmax(1) == expected.argmax(1))),
        "p50_vs_pytorch_int8": None, "batch_vs_pytorch_int8": None, "pytorch_top1_agreement_with_float32": None,
    }
    if TORCH_INT8 in figures:
        theirs = figures[TORCH_INT8]
        result.update(
            p50_vs_pytorch_int8=ours["p50_ms"] / theirs["p50_ms"],
            batch_vs_pytorch_int8=ours["batch_images_per_s"] / theirs["batch_images_per_s"],
            pytorch_top1_agreement_with_float32=checks[torch_serving.INT8]["top1_agreement"],
        )
    return result


def check_same_weights(model, preprocessing, saved, servers, images):
    """The two frameworks' outputs on `images`, from the same weights.

    "logits_max_rel_diff_float32": kerascnn's model in float32 against PyTorch
    float32 eager, largest difference over the largest logit; per PyTorch
    mode, its logits against kerascnn's float32 ones (same measure), and its
    probabilities against the SavedModel's ("max_abs_diff", "top1_agreement").
    """
    x = preprocessing(tf.constant(images))
    keras_logits = float32_model(model)(x, training=False).numpy()
    torch_logits = np.asarray(servers[torch_reference.FLOAT32].check(len(images))["logits"])
    scale = float(np.max(np.abs(torch_logits))) or 1.0
    checks = {"logits_max_rel_diff_float32": float(np.max(np.abs(keras_logits - torch_logits))) / scale}
    expected = saved.predict(tf.constant(images))
    for mode, server in servers.items():
        got = server.check(len(images))
        probabilities = np.asarray(got["probabilities"])
        checks[mode] = {
            "logits_max_rel_diff": float(np.max(np.abs(np.asarray(got["logits"]) - keras_logits))) / scale,
            "max_abs_diff": float(np.max(np.abs(probabilities - expected))),
            "top1_agreement": float(np.mean(probabilities.argmax(1) == expected.argmax(1))),
        }
    return checks


def bench_model(name, args, precisions, folder):
    """The figures of one model (a JSON-ready dict); `precisions` of kerascnn's exports, the default first."""
    reference, state_dict = reference_weights(name, folder)
    exports = {p: export_same_weights(name, reference, p, args.image_size, folder) for p in precisions}
    default = f"{KERAS} {precisions[0]}"
    rng = np.random.default_rng(0)
    count = max(args.batch, args.check_images)
    images = rng.integers(0, 256, size=(count, args.image_size, args.image_size, 3), dtype=np.uint8)
    images_file = folder / f"{name}_images.npy"
    np.save(images_file, images)
    candidates = {f"{KERAS} {p}": SavedModelCandidate(version, images) for p, (version, _, _) in exports.items()}
    if args.int8:
        _, model, preprocessing = exports[precisions[0]]
        candidates[LITE_INT8] = LiteCandidate(
            float32_model(model), preprocessing, images, images[: torch_serving.CALIBRATION_IMAGES])
    unavailable = {}
    servers = {}
    try:
        for mode in args.torch_modes:
            server = torch_serving.Server(
                name, state_dict, images_file, MEAN, STD, mode, sorted({1, args.batch, args.check_images}),
                threads=args.torch_threads,
            )
            if server.unavailable:
                unavailable[mode] = server.unavailable
                server.close()
                print(f"{name}: PyTorch {mode} {server.unavailable}", file=sys.stderr, flush=True)
                continue
            servers[mode] = candidates[f"pytorch {mode}"] = server
        _, model, preprocessing = exports[precisions[0]]
        checks = check_same_weights(model, preprocessing, candidates[default], servers, images[: args.check_images])
        if checks["logits_max_rel_diff_float32"] > LOGITS_TOLERANCE:
            raise AssertionError(f"{name}: kerascnn and PyTorch logits differ on the same weights: {checks}")
        rounds = {key: [] for key in candidates}
        for round_number in range(1, args.rounds + 1):
            started = time.perf_counter()
            for key, candidate in candidates.items():
                latency = candidate.timings(1, args.calls, args.warmup_calls)
                batch = candidate.timings(args.batch, args.batch_calls, min(args.warmup_calls, 2))
                rounds[key].append({
                    "p50_ms": percentile(latency, 50), "p99_ms": percentile(latency, 99),
                    "batch_seconds": statistics.median(batch),
                })
            # A slow model's full run takes most of an hour: say how far it is.
            print(f"{name}: round {round_number}/{args.rounds} of {len(candidates)} candidates took "
                  f"{time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    finally:
        for server in servers.values():
            server.close()
    figures = {
        key: {
            "p50_ms": statistics.median(r["p50_ms"] for r in rs),
            "p99_ms": statistics.median(r["p99_ms"] for r in rs),
            "batch_images_per_s": args.batch / statistics.median(r["batch_seconds"] for r in rs),
            "rounds": rs,
        }
        for key, rs in rounds.items()
    }
    torch_keys = [k for k in figures if k.startswith("pytorch ") and k != TORCH_INT8]
    best_latency = min(torch_keys, key=lambda k: figures[k]["p50_ms"])
    best_batch = max(torch_keys, key=lambda k: figures[k]["batch_images_per_s"])
    ratios = {}
    for p in precisions:
        ours = figures[f"{KERAS} {p}"]
        ratios[p] = {
            "p50_vs_pytorch_best": ours["p50_ms"] / figures[best_latency]["p50_ms"],
            "p99_vs_pytorch_best": ours["p99_ms"] / figures[best_latency]["p99_ms"],
            "batch_vs_pytorch_best": ours["batch_images_per_s"] / figures[best_batch]["batch_images_per_s"],
        }
        ratios[p]["meets_p50_target"] = ratios[p]["p50_vs_pytorch_best"] <= TARGET_P50
    int8 = None
    if args.int8:
        check = images[: args.check_images]
        int8 = int8_comparison(figures, best_latency, candidates[default].predict(tf.constant(check)),
                               candidates[LITE_INT8], checks, check)
    return {
        "model": name, "kerascnn_precision": precisions[0], "kerascnn_precisions": list(precisions), "int8": int8,
        "exports": {p: str(version) for p, (version, _, _) in exports.items()}, "figures": figures,
        "unavailable": unavailable, "same_weights": checks,
        "pytorch_best_latency_mode": best_latency.removeprefix("pytorch "),
        "pytorch_best_batch_mode": best_batch.removeprefix("pytorch "),
        "ratios": ratios, **ratios[precisions[0]],  # the default export's ratios, also at the top
    }


def markdown(rows, args):
    lines = [
        f"| model | candidate | p50 ms (batch 1) | p99 ms | images/s (batch {args.batch}) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        for key, f in r["figures"].items():
            lines.append(f"| {r['model']} | {key} | {f['p50_ms']:.2f} | {f['p99_ms']:.2f} | {f['batch_images_per_s']:.1f} |")
        for mode, reason in r["unavailable"].items():
            lines.append(f"| {r['model']} | pytorch {mode} | {reason} | | |")
    lines += [
        "", "| model | kerascnn export | p50 / PyTorch best (mode) | p99 ratio | batch images/s ratio (PyTorch mode) "
        "| same weights: float32 logits rel. diff |", "|---|---|---|---|---|---|",
    ]
    for r in rows:
        for precision, ratio in r["ratios"].items():
            p50 = f"{ratio['p50_vs_pytorch_best']:.2f}x"
            p50 = f"**{p50}**" if ratio["meets_p50_target"] else f"{p50} (> {TARGET_P50}x)"
            lines.append(
                f"| {r['model']} | {precision} | {p50} ({r['pytorch_best_latency_mode']}) "
                f"| {ratio['p99_vs_pytorch_best']:.2f}x "
                f"| {ratio['batch_vs_pytorch_best']:.2f}x ({r['pytorch_best_batch_mode']}) "
                f"| {r['same_weights']['logits_max_rel_diff_float32']:.1e} |"
            )
    int8_rows = [r for r in rows if r["int8"]]
    if int8_rows:
        lines += [
            "",
            ("| model | tflite int8 p50 / PyTorch int8 | batch images/s ratio | p50 / PyTorch best float (mode) "
             "| top-1 agreement with the float32 export: tflite, PyTorch int8 | .tflite bytes |"),
            "|---|---|---|---|---|---|",
        ]
        for r in int8_rows:
            i = r["int8"]
            against = "unavailable" if i["p50_vs_pytorch_int8"] is None else f"{i['p50_vs_pytorch_int8']:.2f}x"
            batch = "" if i["batch_vs_pytorch_int8"] is None else f"{i['batch_vs_pytorch_int8']:.2f}x"
            theirs = "" if i["pytorch_top1_agreement_with_float32"] is None else f"{i['pytorch_top1_agreement_with_float32']:.2f}"
            lines.append(
                f"| {r['model']} | {against} | {batch} | {i['p50_vs_pytorch_best_float']:.2f}x "
                f"({i['pytorch_best_float_mode']}) | {i['tflite_top1_agreement_with_float32']:.2f}, {theirs} "
                f"| {i['tflite_bytes']:,} |"
            )
    return "\n".join(lines)


def parse_args(argv=None):
    """The flags, with the defaults of a full or `--quick` run filled in."""
    parser = OneLineParser(description=__doc__.splitlines()[0])
    # No `choices=` here: Python 3.11 checks a "*" positional's whole default list
    # against the choices and refused every run that named no model.
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help=f"of {', '.join(torch_reference.MODELS)} (default: all)")
    parser.add_argument("--precision", nargs="+", default=[hardware.AUTO], choices=[hardware.AUTO, *hardware.PRECISIONS],
                        help="the exported models' precisions, the first compared in the ratios "
                        "(default auto: what fit trains in)")
    parser.add_argument("--serving-precision", nargs="+", default=["float32"], choices=list(SERVED),
                        help="how each export computes (export --serving-precision): float32 (the default, "
                        "the same weights without per-call casts), bfloat16 (the weights stored in bfloat16) "
                        "and/or trained (the training precision)")
    parser.add_argument("--calls", type=int, help="batch-1 calls per round, p50 and p99 over them (default 1000)")
    parser.add_argument("--rounds", type=int, help="rounds of every candidate, medians over them (default 5)")
    parser.add_argument("--batch", type=int, help="batch size of the throughput calls (default 256)")
    parser.add_argument("--batch-calls", type=int, help="batch calls per round (default 5)")
    parser.add_argument("--warmup-calls", type=int,
                        help="untimed batch-1 calls before each block (default 10; batch calls: 2 at most)")
    parser.add_argument("--check-images", type=int, default=8, help="images the same-weights check compares")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--torch-modes", nargs="+", type=torch_serving.serving_mode_flag,
                        help=f"default all: {' '.join(torch_serving.SERVING_MODES)}")
    parser.add_argument("--torch-threads", type=int, help="PyTorch's threads (default: all CPU threads)")
    parser.add_argument("--int8", action="store_true",
                        help="also time kerascnn's TensorFlow Lite int8 export against PyTorch's static int8 quantization")
    parser.add_argument("--export-dir", help="keep the exports and weights here (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 calls, 2 rounds, batch 16, 2 batch calls, "
                        f"2 warm-up calls, PyTorch modes {' '.join(QUICK_MODES)}, unless given")
    parser.add_argument("--json", metavar="OUT")
    parser.add_argument("--markdown", metavar="OUT")
    args = parser.parse_args(argv)
    unknown = [m for m in args.models if m not in torch_reference.MODELS]
    if unknown:
        parser.error(f"no PyTorch reference for {', '.join(unknown)}; choose from {', '.join(torch_reference.MODELS)}")
    args.models = args.models or list(DEFAULT_MODELS)
    defaults = dict(calls=20, rounds=2, batch=16, batch_calls=2, warmup_calls=2, torch_modes=list(QUICK_MODES))
    if not args.quick:
        defaults = dict(calls=1000, rounds=5, batch=256, batch_calls=5, warmup_calls=10,
                        torch_modes=list(torch_serving.SERVING_MODES))
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.int8 and torch_serving.INT8 not in args.torch_modes:
        args.torch_modes.append(torch_serving.INT8)
    if torch_reference.FLOAT32 not in args.torch_modes:
        args.torch_modes.insert(0, torch_reference.FLOAT32)  # the same-weights check needs float32
    return args


def main(argv=None):
    args = parse_args(argv)
    auto, reason = hardware.auto_precision(hardware.describe())
    trained = list(dict.fromkeys(auto if p == hardware.AUTO else p for p in args.precision))
    # A float32 model served "as trained" is the float32 export again: listed once.
    precisions = list(dict.fromkeys(export_label(p, "float32" if p == "float32" and s == "trained" else s)
                                    for p in trained for s in args.serving_precision))
    header = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads; TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}, PyTorch {torch.__version__}; kerascnn exports in {', '.join(precisions)} (auto: {auto}, {reason}); "
        f"{args.image_size}x{args.image_size} uint8 in, probabilities out; batch-1 p50/p99 over {args.calls} calls "
        f"and batch {args.batch} over {args.batch_calls} calls per round, medians of {args.rounds} rounds; "
        "each PyTorch mode in its own process, preprocessing and softmax inside its timed call"
    )
    folder = pathlib.Path(args.export_dir or tempfile.mkdtemp(prefix="serving_latency_"))
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for name in args.models:
            rows.append(bench_model(name, args, precisions, folder))
            keras.backend.clear_session()
            print(f"done: {name}", file=sys.stderr, flush=True)
    finally:
        if not args.export_dir:
            shutil.rmtree(folder, ignore_errors=True)
    table = markdown(rows, args)
    print_report(header, table, args.markdown)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"setup": header, "args": vars(args), "targets": {"p50_vs_pytorch_best": TARGET_P50},
                       "rows": rows}, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
