"""A run directory as what serving needs: its config, its best model, its preprocessing.

Everything is read back through `kerascnn.storage.readback`: a config.json
that is not a run's (or lacks the record serving needs: class names, image
shape, normalisation) and a best.keras that is not a whole Keras model are
one DataError line naming the file, never a traceback.
"""

from kerascnn import layers as _layers  # noqa: F401 -- registers the custom layers best.keras may hold (LRN)
from kerascnn.data.preprocessing import CHANNEL_ORDERS, Preprocessing
from kerascnn.errors import DataError
from kerascnn.record import RunRecord
from kerascnn.storage import readback, rundir

# What serving reads from config.json's "resolved" record.
RECORD_KEYS = {"class_names": list, "image_shape": list}


def _numbers(value, count, positive=False, integer=False):
    return (isinstance(value, list) and len(value) == count and all(
        readback.is_json(v, int if integer else float) and (v > 0 if positive else True) for v in value))


def preprocessing_from(d, path, what, where):
    """The `Preprocessing` of a record's or a manifest's dict; DataError naming `path` and the key `where`."""
    if not isinstance(d, dict) or not _numbers(d.get("image_size"), 2, True, True) or not _numbers(
        d.get("mean"), 3
    ) or not _numbers(d.get("std"), 3, True) or not (
        d.get("resize_to") is None or _numbers(d["resize_to"], 2, True, True)
    ) or d.get("channel_order", "rgb") not in CHANNEL_ORDERS:
        raise DataError(f"{path} has no usable \"{where}\" (image size, mean and std of the images); {what}")
    return Preprocessing.from_dict(d)


def run_record(run_dir, config):
    """(RunRecord, Preprocessing) of a run's config dict; DataError naming config.json when they cannot be used."""
    path, what = run_dir / rundir.CONFIG, rundir.damaged(run_dir, rundir.CONFIG)
    resolved = config.get("resolved")
    if not isinstance(resolved, dict):
        raise DataError(f"{path} has no record of the run (\"resolved\"); {what}")
    readback.check_keys(path, resolved, RECORD_KEYS, what, where="resolved.")
    names = resolved["class_names"]
    if not names or not all(isinstance(n, str) for n in names):
        raise DataError(f"{path} has no list of class names (\"resolved.class_names\"); {what}")
    if resolved.get("preprocessing") is not None:
        preprocessing = preprocessing_from(resolved["preprocessing"], path, what, "resolved.preprocessing")
    else:  # runs written before the evaluation crop was recorded
        preprocessing = preprocessing_from(
            {"image_size": (resolved["image_shape"] or [])[:2], "mean": resolved.get("mean"), "std": resolved.get("std")},
            path, what, "resolved.mean",
        )
    try:
        record = RunRecord.from_dict(resolved)
    except (TypeError, ValueError) as e:
        raise DataError(f"{path} has a record this kerascnn cannot read ({e}); {what}") from None
    return record, preprocessing


def load_run(run_dir):
    """(config dict, best model, Preprocessing) of a finished or running run directory."""
    run_dir = rundir.require_run_dir(run_dir, need=(rundir.CONFIG, rundir.BEST))
    config = rundir.read_config(run_dir)
    _, preprocessing = run_record(run_dir, config)
    model = readback.load_keras_model(run_dir / rundir.BEST, rundir.damaged(run_dir, rundir.BEST))
    return config, model, preprocessing
