"""trials.csv and summary.md, read back from the files a search leaves.

Everything is rebuilt from disk (KerasTuner's `trial_<id>/trial.json` plus
our `kerascnn_trial.json`), so `tune-report` works on a finished, running or
killed search, without TensorFlow, and a chief and its workers need share
nothing but the folder.
"""

import csv
import io
import json
import math
import pathlib

from kerascnn.storage.atomic import write_text
from tuning import searchdir

# Columns after the hyperparameters; `settings` are the flat description of
# each trial (tuning.spaces.TrialSettings.describe), the same for every space.
SETTINGS = (
    "optimizer", "learning_rate", "weight_decay", "batch_size", "val_split",
    "regularization", "batch_norm", "dropout", "width_multiplier", "augment",
)
MEASURED = (
    "epochs_run", "best_train_accuracy", "best_val_accuracy", "test_accuracy",
    "wall_seconds", "seconds_per_epoch", "tuner_id",
)


def _load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None  # a trial being written right now: read it next time


def collect(results_dir):
    """One dict per trial, in trial-id order.

    Keys: `trial_id`, `status`, `score` (the objective), `hp` (the active
    hyperparameter values), and every name of SETTINGS and MEASURED (None
    where the trial has not finished).
    """
    project = pathlib.Path(results_dir) / searchdir.PROJECT
    rows = []
    for trial_dir in sorted(project.glob("trial_*")):
        trial = _load(trial_dir / "trial.json")
        if trial is None:
            continue
        extras = _load(trial_dir / searchdir.EXTRAS) or {}
        row = {
            "trial_id": trial["trial_id"],
            "status": trial["status"],
            "score": trial.get("score"),
            "hp": dict(trial["hyperparameters"]["values"]),
        }
        settings = extras.get("settings", {})
        for key in SETTINGS:
            row[key] = settings.get(key)
        for key in MEASURED:
            row[key] = extras.get(key)
        if trial["status"] != "COMPLETED":
            # A trial re-run after a crash may have measurements of its earlier try.
            for key in MEASURED:
                row[key] = None
        rows.append(row)
    return rows


def completed(rows):
    return [r for r in rows if r["status"] == "COMPLETED" and r["test_accuracy"] is not None]


def best(rows, n=5):
    """The `n` completed trials with the best validation accuracy (the objective)."""
    return sorted(completed(rows), key=lambda r: -(r["best_val_accuracy"] or 0.0))[:n]


def _cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def hp_names(rows):
    """Every hyperparameter seen in any trial, in order of first appearance."""
    names = []
    for r in rows:
        for k in r["hp"]:
            if k not in names:
                names.append(k)
    return names


def trials_table(rows):
    """(header, list of row lists) as they go into trials.csv."""
    hps = hp_names(rows)
    header = ["trial_id", "status", *[f"hp:{h}" for h in hps], *SETTINGS, *MEASURED]
    body = []
    for r in rows:
        body.append(
            [r["trial_id"], r["status"], *[r["hp"].get(h) for h in hps], *[r[k] for k in SETTINGS], *[r[k] for k in MEASURED]]
        )
    return header, body


def write_trials_csv(rows, path):
    header, body = trials_table(rows)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for line in body:
        writer.writerow([_cell(v) for v in line])
    write_text(path, out.getvalue())


def _fmt(value, kind="g"):
    if value is None:
        return "-"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "s":
        return f"{value:.1f}"
    return _cell(value)


def summary_markdown(rows, identity, plots=(), n_best=10):
    """The text of summary.md: the search, its progress, the best trials, the plots."""
    identity = identity or {}
    statuses = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    lines = [
        f"# Tuning {identity.get('model', '?')}: space {identity.get('space', '?')}, "
        f"tuner {identity.get('tuner', '?')}",
        "",
        f"Data: {identity.get('data', {})}. Objective: validation accuracy (max). "
        "Test accuracy is the trial's best checkpoint on the test split.",
        "",
        "Trials: " + (", ".join(f"{n} {s.lower()}" for s, n in sorted(statuses.items())) or "none yet") + ".",
        "",
        f"## Best trials (by validation accuracy, top {n_best})",
        "",
        "| trial | optimizer | lr | batch | val split | regularisation | epochs | train acc | val acc | "
        "test acc | s/epoch | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in best(rows, n_best):
        lines.append(
            f"| {r['trial_id']} | {r['optimizer']} | {_fmt(r['learning_rate'])} | {_fmt(r['batch_size'])} | "
            f"{_fmt(r['val_split'])} | {r['regularization']} | {_fmt(r['epochs_run'])} | "
            f"{_fmt(r['best_train_accuracy'], 'pct')} | {_fmt(r['best_val_accuracy'], 'pct')} | "
            f"{_fmt(r['test_accuracy'], 'pct')} | {_fmt(r['seconds_per_epoch'], 's')} | "
            f"{_fmt(r['wall_seconds'], 's')} |"
        )
    top = best(rows, 1)
    if top:
        lines += ["", "Hyperparameters of the best trial: " + json.dumps(top[0]["hp"]) + "."]
    if plots:
        lines += ["", "## Plots", ""]
        for p in plots:
            p = pathlib.Path(p)
            lines.append(f"![{p.stem}]({searchdir.PLOTS}/{p.name})")
    lines.append("")
    return "\n".join(lines)


def write_report(results_dir, plots=True):
    """Rewrite trials.csv, and with `plots` the PNGs and summary.md. Returns the rows."""
    results_dir = pathlib.Path(results_dir)
    rows = collect(results_dir)
    write_trials_csv(rows, results_dir / searchdir.TRIALS_CSV)
    if plots:
        from tuning.plots import write_plots

        paths = write_plots(completed(rows), results_dir / searchdir.PLOTS)
        identity = searchdir.read_identity(results_dir)
        write_text(results_dir / searchdir.SUMMARY, summary_markdown(rows, identity, paths))
    return rows
