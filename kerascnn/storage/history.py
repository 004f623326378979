"""history.csv: one row per finished epoch of a run (`epoch` first, then sorted columns).

Written by the training loop (`kerascnn.training.callbacks.HistoryWriter`),
read by `--resume`, the evaluation, `compare` and the reports.
"""

import csv
import io
import pathlib

from kerascnn.storage.atomic import write_text


def read_history(path):
    """Rows of a history.csv as dicts of floats (empty when the file is absent)."""
    try:
        with open(path, newline="") as f:
            return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]
    except FileNotFoundError:
        return []


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
