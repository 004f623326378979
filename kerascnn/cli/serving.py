"""`evaluate`, `export` and `predict`: a trained run or an export at work.

Registered on the main parser by `kerascnn.cli.app.build_parser()`; a
mistake by the user raises a `UserError` (one line on stderr, exit status 2).
TensorFlow is imported only in the handlers.
"""

import json
import sys
import time

from kerascnn.cli import flags
from kerascnn.errors import UserError


# The images per batch of evaluate and predict (not fit's --batch-size: the whole batch on one device, no `auto`).
BATCH_SIZE = dict(type=flags.positive_int, default=256, help="images per batch (default 256)")
# Inputs at least this long show their progress on stderr.
PROGRESS_FROM = 1000


def add_parsers(sub):
    p = flags.add_command(sub, "evaluate", cmd_evaluate)
    p.add_argument("path", metavar="RUN_DIR_OR_EXPORT")
    flags.add_data_flags(p)
    p.add_argument("--batch-size", **BATCH_SIZE)
    p.add_argument("--limit", type=flags.positive_int, help="evaluate on the first N test images only")
    p.add_argument("--flip-shift", action="store_true",
                   help="also report accuracy averaged over each image's mirror, and over its mirrors "
                   "and one-pixel shifts (airbench's test-time augmentation; six passes per image)")
    flags.add_flags(p, "--json")

    p = flags.add_command(sub, "export", cmd_export)
    p.add_argument("run_dir", metavar="RUN_DIR")
    flags.add_flags(p, "--export-dir", default="saved_models")
    flags.add_flags(p, "--format", "--serving-precision", "--quantize", "--calibration-images")
    flags.add_group(p, "calibration data (--quantize int8; default: the run's own)", "--dataset", "--data-dir")

    p = flags.add_command(sub, "predict", cmd_predict)
    p.add_argument("path", metavar="EXPORT")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER")
    p.add_argument("--top-k", type=flags.positive_int, default=5, help="classes to list per image (default 5)")
    p.add_argument("--batch-size", **BATCH_SIZE)
    flags.add_flags(p, "--csv", "--json")


def cmd_evaluate(args):
    """test accuracy of a run or an export

    Top-1/top-5 accuracy and cross-entropy on a test split, through the same
    preprocessing as serving. The data defaults to what the model was trained
    on. Takes a run directory, a SavedModel export or a .tflite export.
    --flip-shift adds the flip and the flip-and-shift test-time augmentations.
    """
    if args.dataset and args.data_dir:
        raise UserError("give either --dataset or --data-dir, not both")
    from kerascnn.serving.evaluate import evaluate

    result = evaluate(args.path, args.dataset, args.data_dir, args.batch_size, args.limit, args.flip_shift)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['model']} on {result['data']} ({result['images']} test images): "
            f"accuracy {result['accuracy']:.4f}, top-5 {result['top5_accuracy']:.4f}, "
            f"cross-entropy {result['cross_entropy']:.4f}"
        )
        if args.flip_shift:
            print(f"  with flips {result['with_flips']['accuracy']:.4f}, "
                  f"with flips and shifts {result['with_flips_and_shifts']['accuracy']:.4f}")
    return 0


def cmd_export(args):
    """export a run's best model as a SavedModel or a TensorFlow Lite file

    Write saved_models/<model>/<version>/ from RUN_DIR's best checkpoint: a
    SavedModel taking raw uint8 images (computing in float32 unless
    --serving-precision bfloat16 or trained), model.keras and labels.txt, verified
    after writing. With --format tflite, write
    saved_models/<model>/tflite/<version>/<model>_<quantize>.tflite with the
    same labels.txt and kerascnn.json (--quantize int8 calibrates on training
    images of the run).
    """
    if args.format != "tflite" and (args.quantize or args.calibration_images or args.dataset or args.data_dir):
        given = [f for f, v in (("--quantize", args.quantize), ("--calibration-images", args.calibration_images),
                                ("--dataset", args.dataset), ("--data-dir", args.data_dir)) if v]
        raise UserError(f"{', '.join(given)} go with --format tflite; add it, or drop them for a SavedModel")
    if args.calibration_images and args.quantize != "int8" or (args.dataset or args.data_dir) and args.quantize != "int8":
        raise UserError("--calibration-images, --dataset and --data-dir choose int8's calibration images; "
                        "add --quantize int8 or drop them")
    if args.dataset and args.data_dir:
        raise UserError("give either --dataset or --data-dir, not both")
    if args.format == "tflite" and args.serving_precision:
        raise UserError("--serving-precision goes with a SavedModel; a TFLite file computes in float32 "
                        "(--quantize picks its weights); drop one of them")
    if args.format == "tflite":
        from kerascnn.serving.tflite import CALIBRATION_IMAGES, export_tflite

        path = export_tflite(
            args.run_dir, args.export_dir, args.quantize or "none", args.calibration_images or CALIBRATION_IMAGES,
            args.dataset, args.data_dir,
        )
        print(f"exported {args.run_dir} to {path} ({path.stat().st_size:,} bytes)")
        return 0
    from kerascnn.serving.export import export_run

    path = export_run(args.run_dir, args.export_dir, args.serving_precision or "float32")
    print(f"exported {args.run_dir} to {path}")
    return 0


def cmd_predict(args):
    """top-k classes of image files and folders

    Classify image files (JPEG, PNG, BMP, GIF; any size) and every image in
    the folders given (recursively), in batches, with an export (SavedModel
    or .tflite) or a run. A file that cannot be read is reported on stderr,
    one line each, and the rest go on (exit status 1 when there was one).
    """
    from kerascnn.serving.batch_predict import image_files, predict_files, write_csv
    from kerascnn.serving.predictor import load_predictor

    files = image_files(args.images)  # every path there before any work
    predictor = load_predictor(args.path)
    k = min(args.top_k, len(predictor.class_names))
    unreadable = []

    def report(path, reason):
        unreadable.append(path)
        print(f"kerascnn predict: skipped: {reason}", file=sys.stderr)

    progress = Progress(len(files)) if len(files) >= PROGRESS_FROM else None
    rows = list(predict_files(predictor, files, args.batch_size, k, report, progress))
    if progress is not None:
        progress.done()
    if not rows:
        raise UserError(f"none of the {len(files)} image files could be read (each is named above)")
    if args.csv:
        write_csv(args.csv, rows, k)
        print(f"wrote {len(rows)} predictions to {args.csv}")
    elif args.json:
        print(json.dumps({p: [{"class": c, "probability": q} for c, q in r] for p, r in rows}, indent=2))
    else:
        for path, ranked in rows:
            print(path)
            for name, prob in ranked:
                print(f"  {prob:7.4f}  {name}")
    if unreadable:
        print(f"kerascnn predict: {len(unreadable)} of {len(files)} files could not be read (named above)",
              file=sys.stderr)
        return 1
    return 0


class Progress:
    """Images done so far and the rate, on stderr: rewritten in place on a terminal, every tenth otherwise."""

    def __init__(self, total):
        self.total = total
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.next_tenth = 1

    def __call__(self, done):
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        line = f"predict: {done:,}/{self.total:,} images ({rate:,.0f} images/s)"
        if self.tty:
            print(f"\r{line}", end="", file=sys.stderr, flush=True)
        elif done * 10 >= self.next_tenth * self.total:
            print(line, file=sys.stderr, flush=True)
            self.next_tenth = done * 10 // self.total + 1

    def done(self):
        if self.tty:
            print(file=sys.stderr)
