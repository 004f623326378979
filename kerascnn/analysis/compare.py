"""Comparison of finished runs: one table, the curves on shared axes, bar charts.

For each run directory (config.json, metrics.json, history.csv, see
`kerascnn.storage.rundir`):

    model, parameters      config / metrics.json (`count_params` of the inference model)
    MACs                   multiply-accumulates per image, `kerascnn.analysis.profile`,
                           of the model rebuilt from config.json (name, options,
                           resolved input shape and number of classes)
    test accuracy, best validation accuracy, seconds per epoch (median after the first),
    epochs run, overfitting gap (final train accuracy - test accuracy)   metrics.json

Written into the output folder: comparison.md, comparison.csv, curves.png
(validation and train accuracy and validation cross-entropy of every run per
epoch, on shared axes) and bars.png (test accuracy and seconds per epoch).
"""

import pathlib

from kerascnn.record import RunRecord
from kerascnn.storage import rundir
from kerascnn.storage.history import read_history
from kerascnn.analysis import tables
from kerascnn.storage.atomic import save_figure, write_text
from kerascnn.errors import UserError

COMPARISON_MD = "comparison.md"
COMPARISON_CSV = "comparison.csv"
CURVES_PNG = "curves.png"
BARS_PNG = "bars.png"

COLUMNS = (
    "run", "model", "params", "macs", "test_accuracy", "best_val_accuracy",
    "seconds_per_epoch", "epochs", "overfitting_gap",
)
HEADERS = (
    "run", "model", "parameters", "MACs", "test accuracy", "best val accuracy",
    "s/epoch", "epochs", "overfitting gap",
)


def rebuild_model(config):
    """The run's training model, untrained, rebuilt from its config.json (None if it cannot be rebuilt)."""
    from kerascnn.models import create_model

    record = RunRecord.from_dict(config.get("resolved"))
    try:
        return create_model(
            config["model"],
            num_classes=record.num_classes,
            input_shape=record.image_shape,
            **config.get("model_options", {}),
        )
    except (UserError, ValueError, KeyError, TypeError):
        return None


def run_macs(config, metrics=None):
    """MACs per image of the run's model (None if they cannot be counted).

    The figure its metrics.json recorded when the run was tested; for older
    runs without it, counted on the model rebuilt from its config.
    """
    if (metrics or {}).get("macs"):
        return metrics["macs"]
    import keras

    from kerascnn.analysis.profile import profile_model
    from kerascnn.models.auxiliary import inference_model

    model = rebuild_model(config)
    if model is None:
        return None
    macs = profile_model(inference_model(model)).macs
    keras.backend.clear_session()
    return macs


def read_run(path, macs_cache=None):
    """One comparison row (plus the run's history) from a finished run directory."""
    path = rundir.require_run_dir(path, need=(rundir.CONFIG, rundir.METRICS))
    config = rundir.read_config(path)
    metrics = rundir.read_metrics(path)
    history = read_history(path / rundir.HISTORY, missing_ok=False)  # a finished run has its history
    record = RunRecord.from_dict(config.get("resolved"))
    key = (config.get("model"), repr(sorted(config.get("model_options", {}).items())),
           repr(record.image_shape), record.num_classes)
    cache = macs_cache if macs_cache is not None else {}
    if key not in cache:
        cache[key] = run_macs(config, metrics)
    row = {
        "run": path.name,
        "model": config.get("model"),
        "params": metrics.get("params", record.params),
        "macs": cache[key],
        "test_accuracy": metrics.get("test_accuracy"),
        "best_val_accuracy": metrics.get("best_val_accuracy"),
        "seconds_per_epoch": metrics.get("seconds_per_epoch"),
        "epochs": metrics.get("epochs_run"),
        "overfitting_gap": metrics.get("overfitting_gap"),
    }
    return row, history


def plot_curves(named_histories, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, history) in enumerate(named_histories):
        colour = colours[i % len(colours)]
        epochs = [int(r["epoch"]) + 1 for r in history]
        for key, style, label in (("val_accuracy", "-", "val"), ("accuracy", ":", "train")):
            if any(key in r for r in history):
                axes[0].plot(epochs, [r.get(key) for r in history], style, color=colour, marker="o",
                             markersize=3, label=f"{name} {label}")
        if any("val_cross_entropy" in r for r in history):
            axes[1].plot(epochs, [r.get("val_cross_entropy") for r in history], "-", color=colour,
                         marker="o", markersize=3, label=name)
    axes[0].set_ylabel("accuracy (solid: validation, dotted: train)")
    axes[1].set_ylabel("validation cross-entropy")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_bars(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["run"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(rows) + 4), 4.5))
    for ax, key, label in ((axes[0], "test_accuracy", "test accuracy"),
                           (axes[1], "seconds_per_epoch", "seconds per epoch")):
        values = [r[key] if r[key] is not None else 0.0 for r in rows]
        bars = ax.bar(range(len(rows)), values, color="tab:blue" if key == "test_accuracy" else "tab:orange")
        ax.bar_label(bars, fmt="%.3f" if key == "test_accuracy" else "%.1f", fontsize=7)
        ax.set_xticks(range(len(rows)), names, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return save_figure(fig, path)


def compare_runs(run_dirs, out_dir):
    """Write the comparison of `run_dirs` into `out_dir`; return (rows, written paths).

    Every run directory is checked before anything is written.
    """
    cache = {}
    read = [read_run(p, cache) for p in run_dirs]
    rows = [row for row, _ in read]
    out_dir = pathlib.Path(out_dir)
    md_rows = [dict(zip(HEADERS, (r[c] for c in COLUMNS))) for r in rows]
    written = [
        write_text(out_dir / COMPARISON_MD, "# Comparison of runs\n\n" + tables.markdown(HEADERS, md_rows)),
        write_text(out_dir / COMPARISON_CSV, tables.csv_text(COLUMNS, rows)),
        plot_curves([(r["run"], h) for r, (_, h) in zip(rows, read)], out_dir / CURVES_PNG),
        plot_bars(rows, out_dir / BARS_PNG),
    ]
    return rows, written
