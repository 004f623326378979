"""Run directories: naming, atomic JSON writes, and the files a run leaves.

A run directory holds:
    config.json       the resolved RunConfig (enough to rebuild the run)
    history.csv       one row per epoch (CSVLogger + epoch_seconds, learning_rate)
    tensorboard/      TensorBoard logs
    best.keras        the model with the best validation accuracy
    backup/           BackupAndRestore state of the last completed epoch (weights, optimizer,
                      epoch): --resume continues from it; kept when the run finishes, so
                      `fit --resume RUN_DIR --epochs N` can extend it
    metrics.json      written last: its presence marks a finished run
    curves.png        loss and accuracy, train vs validation
    confusion_matrix.png, confusion_matrix.csv
                      test-set confusion matrix of the best model (true x predicted)
    per_class_accuracy.csv
                      test accuracy of each class (kerascnn.analysis.confusion)
"""

import datetime
import json
import pathlib

from kerascnn.storage.atomic import write_text
from kerascnn.errors import DataError

CONFIG = "config.json"
HISTORY = "history.csv"
BEST = "best.keras"
METRICS = "metrics.json"
CURVES = "curves.png"
BACKUP = "backup"
TENSORBOARD = "tensorboard"
CONFUSION_PNG = "confusion_matrix.png"
CONFUSION_CSV = "confusion_matrix.csv"
PER_CLASS_CSV = "per_class_accuracy.csv"


def run_dir_names(model_name, root="runs"):
    """runs/<model>-<YYYYmmdd-HHMMSS>, then the same with -2, -3, ... (for a clash in the same second)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    root = pathlib.Path(root)
    return [root / (f"{model_name}-{stamp}" if k == 1 else f"{model_name}-{stamp}-{k}") for k in range(1, 1000)]


def write_json(path, obj):
    """Write JSON atomically: to a temporary file in the same folder, then rename."""
    write_text(path, json.dumps(obj, indent=2) + "\n")


def read_json(path, what=None, expect=dict, required=(), optional=None, missing_ok=False):
    """The JSON object in `path`, read back through `kerascnn.storage.readback.read_json` (one DataError line)."""
    from kerascnn.storage import readback

    return readback.read_json(path, what, expect=expect, required=required, optional=optional,
                              missing_ok=missing_ok)


def damaged(run_dir, name):
    """What to say after a run directory's file `name` that cannot be used: the run is damaged, and what to do."""
    if name == CONFIG:
        return f"the run's settings are lost: restore {CONFIG} from a copy, or train a new run"
    return (f"the run's {name} is damaged: restore it from a copy, or train the run again with "
            f"`fit --config {run_dir}`")


# config.json: the types its readers rely on, where the keys are present.
CONFIG_TYPES = {"model_options": (dict, None), "data": (dict, None), "optim": (dict, None), "resolved": (dict, None)}
RECORD_TYPES = {"class_names": (list, None), "image_shape": (list, None), "mean": (list, None), "std": (list, None),
                "num_classes": (int, None), "params": (int, None), "preprocessing": (dict, None),
                "num_train": (int, None), "num_val": (int, None), "num_test": (int, None), "source": (str, None)}


def read_config(run_dir):
    """config.json of a run directory as a dict: a JSON object naming its model (DataError otherwise).

    The settings are not checked here (`kerascnn.config.RunConfig.read` does);
    only the types readers rely on: the sections are objects, and the record
    ("resolved") holds lists and numbers where it has them. Readers that need
    a field of the record check that it is there.
    """
    from kerascnn.storage import readback

    run_dir = pathlib.Path(run_dir)
    path, what = run_dir / CONFIG, damaged(run_dir, CONFIG)
    config = read_json(path, what, required={"model": str}, optional=CONFIG_TYPES)
    readback.check_keys(path, config.get("resolved") or {}, optional=RECORD_TYPES, what=what, where="resolved.")
    return config


# metrics.json: what its readers need (compare, the studies, an extension's record), and the
# numbers they may find there (a number, or null where the run had nothing to measure).
METRIC_KEYS = {"test_accuracy": float}
METRIC_NUMBERS = ("best_val_accuracy", "epochs_run", "params", "macs", "seconds_per_epoch", "final_train_accuracy",
                  "overfitting_gap", "test_loss", "test_top5_accuracy")


def read_metrics(run_dir):
    """metrics.json of a finished run (DataError for a file that is not a run's metrics)."""
    run_dir = pathlib.Path(run_dir)
    return read_json(run_dir / METRICS, damaged(run_dir, METRICS), required=METRIC_KEYS,
                     optional={k: (float, None) for k in METRIC_NUMBERS})


def require_run_dir(path, need=(CONFIG,)):
    """Return `path` as a Path, or raise DataError when it is not a run directory."""
    path = pathlib.Path(path)
    if path.is_file():
        raise DataError(f"{path} is a file, not a run directory; pass a folder made by `fit` (see runs/)")
    if not path.is_dir():
        raise DataError(f"run directory {path} does not exist; pass a folder made by `fit` (see runs/)")
    missing = [name for name in need if not (path / name).exists()]
    if missing:
        raise DataError(
            f"{path} is not a complete run directory: {', '.join(missing)} is missing "
            "(was training interrupted before the first epoch ended?)"
        )
    return path
