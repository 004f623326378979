"""history.csv: one row per finished epoch of a run (`epoch` first, then sorted columns).

Written by the training loop (`kerascnn.training.callbacks.HistoryWriter`),
read by `--resume`, the evaluation, `compare` and the reports.
"""

import csv
import io
import math
import pathlib

from kerascnn.errors import DataError
from kerascnn.storage.atomic import write_text


def read_history(path, missing_ok=True, what=None):
    """Rows of a history.csv as dicts of floats.

    A missing file is a run that has not finished an epoch yet: [] with
    `missing_ok` (the default, for a run being trained or resumed), a
    DataError without it (a finished run's history). A file that is not a
    whole history (truncated, not CSV, no `epoch` column, a cell that is not
    a number, a row without its epoch) is a DataError naming it (`what` says
    what to do; by default, what `kerascnn.storage.rundir.damaged` says).
    """
    from kerascnn.storage import readback
    from kerascnn.storage.rundir import damaged

    path = pathlib.Path(path)
    what = what or damaged(path.parent, path.name)
    table = readback.read_csv(path, what, columns=("epoch",), numeric="*", missing_ok=missing_ok)
    if table is None:
        return []
    header, lines = table
    rows = [{k: float(v) for k, v in zip(header, line) if v != ""} for line in lines]
    for number, row in enumerate(rows, start=2):
        epoch = row.get("epoch")
        if epoch is None or not math.isfinite(epoch) or epoch != int(epoch) or epoch < 0:
            raise DataError(f"{path} is damaged (line {number} has no epoch number); {what}")
    return rows


def write_history(path, rows):
    """Write history rows as CSV atomically (temporary file, then rename).

    `epoch` comes first, the other columns sorted; a crash while writing
    leaves the previous complete file, never a half-written row.
    """
    path = pathlib.Path(path)
    keys = sorted({k for row in rows for k in row} - {"epoch"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["epoch", *keys], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (int(v) if k == "epoch" else repr(float(v))) for k, v in row.items()})
    write_text(path, buffer.getvalue())
