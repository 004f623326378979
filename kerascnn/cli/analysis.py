"""Analysis subcommands: summary, receptive-field, visualize, compare.

Registered on the main parser by `kerascnn.cli.app.build_parser()`; the
model flags come from `kerascnn.cli.flags`. Like the other subcommands, a
mistake by the user (unknown model, a shape the model cannot take, a path
that is not a run directory) raises a `UserError`, which the CLI prints as
one line with exit status 2; TensorFlow is imported only inside the handlers.
"""

import pathlib
import sys

from kerascnn.cli import flags
from kerascnn.errors import UserError

FORMATS = ("md", "csv", "json")
DTYPES = ("float32", "float16", "bfloat16")
MODEL_OPTIONS = ("--width-multiplier", "--batch-norm")


def _model_flags(p):
    """The "model" group: --input-shape, --num-classes and the options many models take."""
    return flags.add_model_option_flags(flags.add_model_shape_flags(p), *MODEL_OPTIONS)


def _options(args):
    return {k: getattr(args, k, None) for k in ("width_multiplier", "batch_norm")}


def add_parsers(sub):
    """Add the analysis subcommands to the `sub` of the main parser."""
    p = flags.add_command(sub, "summary", cmd_summary)
    p.add_argument("model", metavar="MODEL|RUN_DIR",
                   help="registered model name (see `list`), or a run directory (its model, input and dtype)")
    _model_flags(p)
    p.add_argument("--dtype", choices=DTYPES,
                   help="activation dtype for the memory column (default float32, or the run's precision)")
    p.add_argument("--format", choices=FORMATS, default="md", help="md (default), csv or json on stdout")

    p = flags.add_command(sub, "receptive-field", cmd_receptive_field)
    p.add_argument("models", nargs="+", metavar="MODEL", help="registered model names")
    _model_flags(p)
    p.add_argument("--plot", metavar="PNG", help="also plot field size against depth for all models")
    p.add_argument("--all-layers", action="store_true", help="list every layer, not only convolutions and poolings")
    p.add_argument("--format", choices=("md", "json"), default="md", help="md (default) or json on stdout")

    p = flags.add_command(sub, "visualize", cmd_visualize)
    p.add_argument("source", metavar="RUN_DIR|EXPORT_DIR|MODEL")
    p.add_argument("--image", help="image file for the feature maps (JPEG, PNG, BMP, GIF)")
    flags.add_flags(p, "--out", default="viz")
    flags.add_model_shape_flags(p, "fresh model (SOURCE is a model name)")

    p = flags.add_command(sub, "compare", cmd_compare)
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    flags.add_flags(p, "--out", default="report")


# --- handlers --------------------------------------------------------------


def cmd_summary(args):
    """per-layer output shape, activation memory, parameters and MACs of a model

    One row per layer (inception and residual blocks listed layer by layer):
    output shape, activation memory in KB (1024 B) at --dtype, parameters, MACs
    and FLOPs (= 2 x MACs) for one image, with the model's totals. Exact counts
    from the layer configurations.
    """
    from kerascnn.analysis.build import build_model
    from kerascnn.analysis.profile import format_profile, profile_model
    from kerascnn.models.auxiliary import inference_model

    name, shape, classes, options, dtype = args.model, args.input_shape, args.num_classes, _options(args), "float32"
    if pathlib.Path(args.model).is_dir():
        from kerascnn.storage import rundir

        config = rundir.read_config(rundir.require_run_dir(args.model))
        from kerascnn.record import RunRecord

        record = RunRecord.from_dict(config.get("resolved"))
        name = config["model"]
        shape = shape or record.image_shape
        classes = classes or record.num_classes
        options = {**config.get("model_options", {}), **{k: v for k, v in options.items() if v is not None}}
        # Mixed precision computes (and stores) activations in the 16-bit type.
        dtype = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}.get(config.get("precision"), "float32")
    # GoogLeNet's auxiliary classifiers are training-only (Szegedy et al. 2015, section 5):
    # the profile is that of the network as it infers, like the papers' counts.
    model = inference_model(build_model(name, shape, classes, **options))
    sys.stdout.write(format_profile(profile_model(model, args.dtype or dtype), args.format))
    return 0


def cmd_receptive_field(args):
    """receptive field size, jump and start of every layer of one or more models

    Receptive field (pixels), jump (effective stride) and start (centre of the
    first unit's field) of every convolution and pooling, along the graph
    (largest over branches), and the input pixels the last map's field covers.
    """
    from kerascnn.analysis import tables
    from kerascnn.analysis.build import build_model
    from kerascnn.analysis.receptive_field import coverage_line, plot_fields, receptive_fields, table_rows
    from kerascnn.models import check_model_name

    for name in args.models:  # every name checked before any model is built
        check_model_name(name)
    results = []
    for name in args.models:
        # The classifier sees the whole input; building without it saves most weights.
        model = build_model(name, args.input_shape, args.num_classes, include_top=False, **_options(args))
        image = tuple(model.inputs[0].shape)[1:3]
        results.append((name, image, receptive_fields(model)))
    if args.format == "json":
        sys.stdout.write(tables.json_text([
            {"model": n, "input": list(img), "layers": [r.to_dict() for r in rows]} for n, img, rows in results
        ]))
    else:
        for name, image, rows in results:
            print(f"## {name} at {image[0]}x{image[1]}\n")
            sys.stdout.write(tables.markdown(
                ("layer", "type", "depth", "output", "field", "jump", "start"), table_rows(rows, args.all_layers)
            ))
            print(f"\n{coverage_line(name, rows, image)}.\n")
    if args.plot:
        path = plot_fields([(n, rows) for n, _, rows in results], args.plot)
        print(f"wrote {path}", file=sys.stderr if args.format == "json" else sys.stdout)
    return 0


def cmd_visualize(args):
    """first-layer filters and per-block feature maps as PNG files

    Write filters.png (the first convolution's filters) and, with --image, one
    features_NN_<layer>.png per block into --out. SOURCE is a run directory, an
    export (saved_models/<model>/<version>) or a model name (built fresh, random
    weights).
    """
    from kerascnn.analysis.visualize import load_for_analysis, visualize
    from kerascnn.serving.predictor import decode_image_file

    image = decode_image_file(args.image) if args.image else None  # readable before any work
    loaded = load_for_analysis(args.source, args.input_shape, args.num_classes)
    print(f"{loaded.description}")
    for path in visualize(loaded, args.out, image):
        print(f"wrote {path}")
    if image is None:
        print("no --image given: feature maps not drawn")
    return 0


def cmd_compare(args):
    """table, curves and bar charts of several finished runs

    Write comparison.md and comparison.csv (model, parameters, MACs, test
    accuracy, best validation accuracy, seconds per epoch, epochs, overfitting
    gap), curves.png (all runs on shared axes) and bars.png (test accuracy, time
    per epoch) into --out.
    """
    from kerascnn.analysis.compare import compare_runs

    if len(set(args.run_dirs)) != len(args.run_dirs):
        raise UserError("a run directory is named twice; name each run once")
    rows, written = compare_runs(args.run_dirs, args.out)
    for path in written:
        print(f"wrote {path}")
    return 0
