"""`evaluate`, `export` and `predict`: a trained run or an export at work.

Registered on the main parser by `kerascnn.cli.app.build_parser()`; a
mistake by the user raises a `UserError` (one line on stderr, exit status 2).
TensorFlow is imported only in the handlers.
"""

import json

from kerascnn.cli import flags
from kerascnn.errors import UserError


def add_parsers(sub):
    p = flags.add_command(sub, "evaluate", cmd_evaluate)
    p.add_argument("path", metavar="RUN_DIR_OR_EXPORT_DIR")
    flags.add_data_flags(p)
    # Not fit's --batch-size: the whole batch on one device, and no `auto`.
    p.add_argument("--batch-size", type=flags.positive_int, default=256, help="test images per batch (default 256)")
    p.add_argument("--limit", type=flags.positive_int, help="evaluate on the first N test images only")
    flags.add_flags(p, "--json")

    p = flags.add_command(sub, "export", cmd_export)
    p.add_argument("run_dir", metavar="RUN_DIR")
    flags.add_flags(p, "--export-dir", default="saved_models")

    p = flags.add_command(sub, "predict", cmd_predict)
    p.add_argument("path", metavar="EXPORT_DIR")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", type=flags.positive_int, default=5, help="classes to list per image (default 5)")
    flags.add_flags(p, "--json")


def cmd_evaluate(args):
    """test accuracy of a run or an export

    Top-1/top-5 accuracy and cross-entropy on a test split, through the same
    preprocessing as serving. The data defaults to what the model was trained on.
    """
    if args.dataset and args.data_dir:
        raise UserError("give either --dataset or --data-dir, not both")
    from kerascnn.serving.evaluate import evaluate

    result = evaluate(args.path, args.dataset, args.data_dir, args.batch_size, args.limit)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['model']} on {result['data']} ({result['images']} test images): "
            f"accuracy {result['accuracy']:.4f}, top-5 {result['top5_accuracy']:.4f}, "
            f"cross-entropy {result['cross_entropy']:.4f}"
        )
    return 0


def cmd_export(args):
    """export a run's best model as a SavedModel

    Write saved_models/<model>/<version>/ from RUN_DIR's best checkpoint: a
    SavedModel taking raw uint8 images, model.keras and labels.txt, verified
    after writing.
    """
    from kerascnn.serving.export import export_run

    path = export_run(args.run_dir, args.export_dir)
    print(f"exported {args.run_dir} to {path}")
    return 0


def cmd_predict(args):
    """top-k classes of image files

    Classify image files (JPEG, PNG, BMP, GIF; any size) with an export or a run.
    """
    from kerascnn.serving.predictor import decode_image_file, load_predictor, top_k

    images = [decode_image_file(p) for p in args.images]  # all readable before any work
    predictor = load_predictor(args.path)
    results = {}
    for path, image in zip(args.images, images):
        results[path] = top_k(predictor.probabilities(image)[0], predictor.class_names, args.top_k)
    if args.json:
        print(json.dumps({p: [{"class": c, "probability": q} for c, q in r] for p, r in results.items()}, indent=2))
    else:
        for path, ranked in results.items():
            print(path)
            for name, prob in ranked:
                print(f"  {prob:7.4f}  {name}")
    return 0
