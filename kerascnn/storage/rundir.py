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


def new_run_dir(model_name, root="runs"):
    """Create and return runs/<model>-<YYYYmmdd-HHMMSS> (with -2, -3... on a clash)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for k in range(1, 1000):
        path = root / (f"{model_name}-{stamp}" if k == 1 else f"{model_name}-{stamp}-{k}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a run directory under {root}")


def write_json(path, obj):
    """Write JSON atomically: to a temporary file in the same folder, then rename."""
    write_text(path, json.dumps(obj, indent=2) + "\n")


def read_json(path):
    with open(path) as f:
        return json.load(f)


def require_run_dir(path, need=(CONFIG,)):
    """Return `path` as a Path, or raise DataError when it is not a run directory."""
    path = pathlib.Path(path)
    if not path.is_dir():
        raise DataError(f"run directory {path} does not exist; pass a folder made by `fit` (see runs/)")
    missing = [name for name in need if not (path / name).exists()]
    if missing:
        raise DataError(
            f"{path} is not a complete run directory: {', '.join(missing)} is missing "
            "(was training interrupted before the first epoch ended?)"
        )
    return path
