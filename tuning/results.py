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

from kerascnn.errors import DataError
from kerascnn.storage import readback
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
    "wall_seconds", "seconds_per_epoch", "tuner_id", "diverged",
)


# What a report reads of KerasTuner's trial.json, and of our kerascnn_trial.json where present.
TRIAL_KEYS = {"trial_id": str, "status": str, "hyperparameters": dict}
EXTRAS_TYPES = {"settings": dict, **{key: (float, str, None) for key in MEASURED}}


def damaged(results_dir):
    """What to say after a damaged file of the search in `results_dir`: what to do."""
    return (f"the search in {results_dir} is damaged: delete that trial's folder to run the trial again, "
            "or start over with `tune ... --overwrite`")


def _load(path, what, required=(), optional=None, being_written=False):
    """A trial's JSON file; None when it does not exist (yet).

    With `being_written` a trial.json that is not whole JSON yet is skipped
    too (None): KerasTuner writes it in place, so a report taken while a
    trial starts or ends can see it half-written; it is read next time.
    Anything else that is wrong (a folder, unreadable, JSON of another
    shape) is a DataError.
    """
    try:
        return readback.read_json(path, what, required=required, optional=optional, missing_ok=True)
    except readback.ReadBackError as e:
        if being_written and e.kind in ("empty", "truncated"):
            return None
        raise


def collect(results_dir):
    """One dict per trial, in trial-id order.

    Keys: `trial_id`, `status`, `score` (the objective), `hp` (the active
    hyperparameter values), and every name of SETTINGS and MEASURED (None
    where the trial has not finished).
    """
    project = pathlib.Path(results_dir) / searchdir.PROJECT
    rows = []
    for trial_dir in sorted(project.glob("trial_*")):
        if not trial_dir.is_dir():
            continue
        what = damaged(results_dir)
        trial = _load(trial_dir / "trial.json", what, TRIAL_KEYS, {"score": (float, None)}, being_written=True)
        if trial is None:
            continue  # a trial being written right now: read it next time
        readback.check_keys(trial_dir / "trial.json", trial["hyperparameters"], {"values": dict}, what,
                            where="hyperparameters.")
        extras = _load(trial_dir / searchdir.EXTRAS, what, optional=EXTRAS_TYPES) or {}
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
    ]
    diverged = [r for r in rows if r.get("diverged")]
    if diverged:
        lines += [
            "Diverged, stopped at the first non-finite figure (their best epoch before it still counts): "
            + "; ".join(f"trial {r['trial_id']} ({r['diverged']})" for r in diverged) + ".",
            "",
        ]
    lines += [
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
    identity = searchdir.read_identity(results_dir) if plots else None  # read all before writing anything
    write_trials_csv(rows, results_dir / searchdir.TRIALS_CSV)
    if plots:
        from tuning.plots import write_plots

        paths = write_plots(completed(rows), results_dir / searchdir.PLOTS)
        write_text(results_dir / searchdir.SUMMARY, summary_markdown(rows, identity, paths))
    return rows


# What KerasTuner's Oracle.set_state reads of oracle.json (a reload fails without any of them).
ORACLE_KEYS = {"ongoing_trials": dict, "hyperparameters": dict, "start_order": list, "end_order": list,
               "run_times": dict, "retry_queue": list, "seed": int, "seed_state": int, "tried_so_far": list,
               "id_to_hash": dict, "display": dict}
CHECKPOINT = "checkpoint.weights.h5"  # KerasTuner's best epoch of a trial
TRIAL_STATE_KEYS = {**TRIAL_KEYS, "metrics": dict, "best_step": (int, None), "message": (str, None)}


def check_resumable(results_dir, tuner_id=None):
    """DataError unless every file KerasTuner reloads to resume the search in `results_dir` is whole.

    KerasTuner reads its project (search/oracle.json, search/tuner*.json,
    every search/trial_*/trial.json) without checking it; a damaged one
    would end `tune` with a traceback after the data was opened. With
    `tuner_id` (a search in one process: "tuner0") that tuner's file must
    be there too. Nothing is skipped here: a trial.json a killed process
    left half-written is named, with what to do.
    """
    project = pathlib.Path(results_dir) / searchdir.PROJECT
    what = damaged(results_dir)
    if not project.exists():
        return
    if not project.is_dir():
        raise DataError(f"{project} is a file, not the folder of KerasTuner's search; {what}")
    oracle = project / "oracle.json"
    if oracle.exists() or any(project.glob("trial_*")):
        readback.read_json(oracle, what, required=ORACLE_KEYS, optional={"grid_order": list, "populate_next": list})
    for path in sorted(project.glob("tuner*.json")):
        readback.read_json(path, what)
    if tuner_id is not None and oracle.exists():
        # KerasTuner reloads the search only when this tuner's file is there: without it the oracle
        # would start again at trial 0, over the trials on disk.
        readback.read_json(project / f"{tuner_id}.json", what)
    for trial_dir in sorted(project.glob("trial_*")):
        if not trial_dir.is_dir():
            continue
        path = trial_dir / "trial.json"
        trial = readback.read_json(path, what, required=TRIAL_STATE_KEYS, optional={"score": (float, None)},
                                   missing_ok=True)
        if trial is not None:
            readback.check_keys(path, trial["hyperparameters"], {"values": dict, "space": list}, what,
                                where="hyperparameters.")
        _load(trial_dir / searchdir.EXTRAS, what, optional=EXTRAS_TYPES)
        checkpoint = trial_dir / CHECKPOINT
        if checkpoint.exists() or checkpoint.is_symlink():  # reloaded to record or --export the trial
            readback.check_hdf5(checkpoint, what)
