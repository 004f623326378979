"""TensorFlow Lite against the SavedModel: size, test accuracy, single-image latency; predict throughput.

    python benchmarks/tflite.py RUN_DIR [RUN_DIR ...] --data-dir DIR [--calibration-images 300]
        [--latency-repeats 200] [--predict-images 2000] [--json OUT]

For each run directory (a trained run: best.keras, config.json), in the same
process and on the same machine:

1. export it as a SavedModel (`export_run`) and as TensorFlow Lite float32,
   float16 and int8 (`export_tflite`, int8 calibrated on
   `--calibration-images` training images of the run), under
   RUN_DIR/saved_models/;
2. size: the SavedModel's saved_model.pb + variables/ (the part TF Serving
   loads; the export's model.keras copy is left out), the .tflite files;
3. test accuracy and cross-entropy on the whole test split of `--data-dir`
   (`kerascnn.serving.evaluate.evaluate`, the product's `evaluate`: raw
   uint8 images in, batches of 256);
4. single-image latency: one 32x32 test image through the SavedModel's
   `serve` signature and through each interpreter (batch 1, all cores for
   both), timed round-robin (`timing.interleaved`) after 20 untimed calls:
   median and 90th percentile of `--latency-repeats` calls;
5. predict throughput, once, on the first run: `--predict-images` test JPEG
   files through `predict_files` (tf.data reading and resizing, batches of
   256) with the SavedModel and with the int8 model, against the loop the
   product had before (decode one file, call the SavedModel on it, next),
   in images per second, files read from disk in every case.

Accuracy target (issue 18): int8 within 1 point of the float32 SavedModel
at a quarter of its size or less.
"""

import json
import os
import pathlib
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

from kerascnn.cli.flags import OneLineParser  # noqa: E402  (one-line argparse errors, exit 2)
from kerascnn.runtime.quiet import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerascnn.serving.batch_predict import image_files, predict_files  # noqa: E402
from kerascnn.serving.evaluate import evaluate  # noqa: E402
from kerascnn.serving.export import export_run  # noqa: E402
from kerascnn.serving.interpreter import LiteModel  # noqa: E402
from kerascnn.serving.predictor import decode_image_file, load_predictor  # noqa: E402
from kerascnn.serving.tflite import export_tflite  # noqa: E402
from timing import interleaved  # noqa: E402

VARIANTS = ("float32 SavedModel", "float32 TFLite", "float16 TFLite", "int8 TFLite")


def savedmodel_bytes(version):
    """Bytes of saved_model.pb and variables/ (what TF Serving loads)."""
    files = [version / "saved_model.pb", *(version / "variables").rglob("*")]
    return sum(p.stat().st_size for p in files if p.is_file())


def first_test_image(data_dir):
    folder = sorted((pathlib.Path(data_dir) / "test").iterdir())[0]
    return decode_image_file(sorted(folder.iterdir())[0])


def latency(saved, lites, image, repeats):
    """{variant: {"median_ms", "p90_ms"}} of one image, round-robin."""
    serve = tf.saved_model.load(str(saved)).signatures["serve"]
    x = tf.constant(image[None])
    runs = {"float32 SavedModel": lambda: serve(images=x)["probabilities"].numpy()}
    pixels = image[None].astype(np.float32)
    for name, path in lites.items():
        model = LiteModel(path=path)
        runs[name] = lambda m=model: m.logits(pixels, batch_size=1)
    seconds = interleaved(runs, repeats, warmup=20)
    return {
        name: {"median_ms": 1e3 * statistics.median(s), "p90_ms": 1e3 * float(np.percentile(s, 90))}
        for name, s in seconds.items()
    }


def predict_throughput(saved, int8, files, batch_size=256):
    """Images per second: predict_files (SavedModel, int8) and the one-file-at-a-time loop (SavedModel)."""
    out = {}
    for name, path in (("SavedModel, predict in batches of 256", saved), ("int8 TFLite, predict in batches of 256", int8)):
        predictor = load_predictor(path)
        list(predict_files(predictor, files[:batch_size], batch_size))  # trace, thread pools
        start = time.perf_counter()
        rows = list(predict_files(predictor, files, batch_size))
        out[name] = len(rows) / (time.perf_counter() - start)
    predictor = load_predictor(saved)
    for f in files[:20]:
        predictor.probabilities(decode_image_file(f))
    start = time.perf_counter()
    for f in files:
        predictor.probabilities(decode_image_file(f))
    out["SavedModel, one image at a time"] = len(files) / (time.perf_counter() - start)
    return out


def measure(run_dir, data_dir, calibration, repeats, log=print):
    run_dir = pathlib.Path(run_dir)
    exports = run_dir / "saved_models"
    saved = export_run(run_dir, exports)
    log(f"{run_dir.name}: SavedModel {saved}")
    lites = {}
    for quantize, name in (("none", "float32 TFLite"), ("float16", "float16 TFLite"), ("int8", "int8 TFLite")):
        start = time.perf_counter()
        lites[name] = export_tflite(run_dir, exports, quantize, calibration)
        log(f"{run_dir.name}: {name} {lites[name]} ({time.perf_counter() - start:.0f} s)")
    paths = {"float32 SavedModel": saved, **lites}
    rows = {}
    for name, path in paths.items():
        start = time.perf_counter()
        result = evaluate(path, data_dir=data_dir)
        size = savedmodel_bytes(saved) if name == "float32 SavedModel" else path.stat().st_size
        rows[name] = {
            "bytes": size, "accuracy": result["accuracy"], "cross_entropy": result["cross_entropy"],
            "images": result["images"], "evaluate_seconds": time.perf_counter() - start, "path": str(path),
        }
        log(f"{run_dir.name}: {name}: {size:,} bytes, accuracy {result['accuracy']:.4f} "
            f"({rows[name]['evaluate_seconds']:.0f} s)")
    for name, timing in latency(saved, lites, first_test_image(data_dir), repeats).items():
        rows[name].update(timing)
    base = rows["float32 SavedModel"]
    for row in rows.values():
        row["size_ratio"] = row["bytes"] / base["bytes"]
        row["accuracy_points"] = 100 * (row["accuracy"] - base["accuracy"])
    int8 = rows["int8 TFLite"]
    model = json.loads((run_dir / "config.json").read_text())["model"]
    return {"run": str(run_dir), "model": model, "rows": rows, "saved": str(saved), "int8": str(lites["int8 TFLite"]),
            "target_met": int8["accuracy_points"] >= -1.0 and int8["size_ratio"] <= 0.25}


def markdown(results, throughput):
    lines = [
        "| model | format | size (MB) | size vs SavedModel | test accuracy | vs float32 (points) | "
        "latency, 1 image (ms, median / p90) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        for name in VARIANTS:
            r = result["rows"][name]
            lines.append(
                f"| {result['model']} | {name} | {r['bytes'] / 1e6:.2f} | {r['size_ratio']:.3f} | "
                f"{100 * r['accuracy']:.2f}% | {r['accuracy_points']:+.2f} | {r['median_ms']:.2f} / {r['p90_ms']:.2f} |"
            )
    if throughput:
        lines += ["", "| predict | images/s |", "|---|---:|"]
        lines += [f"| {name} | {rate:,.0f} |" for name, rate in throughput["rates"].items()]
    return "\n".join(lines)


def main(argv=None):
    p = OneLineParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--data-dir", default=os.environ.get("KERASCNN_CIFAR10_DIR"), help="CIFAR-10 image folder")
    p.add_argument("--calibration-images", type=int, default=300)
    p.add_argument("--latency-repeats", type=int, default=200)
    p.add_argument("--predict-images", type=int, default=2000)
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if not args.data_dir:
        p.error("give --data-dir or set KERASCNN_CIFAR10_DIR")
    started = time.strftime("%Y-%m-%d %H:%M")
    results = [measure(run, args.data_dir, args.calibration_images, args.latency_repeats) for run in args.runs]
    throughput = None
    if args.predict_images:
        files = image_files([pathlib.Path(args.data_dir) / "test"])
        files = files[:: max(1, len(files) // args.predict_images)][: args.predict_images]  # every class
        rates = predict_throughput(pathlib.Path(results[0]["saved"]), pathlib.Path(results[0]["int8"]), files)
        throughput = {"model": results[0]["model"], "images": len(files), "rates": rates}
    report = {
        "date": started, "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "tensorflow": tf.__version__, "command": " ".join(sys.argv), "results": results, "predict": throughput,
    }
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(results, throughput))
    for result in results:
        print(f"{result['model']}: int8 within 1 point at a quarter of the size or less: {result['target_met']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
