"""A run directory as what serving needs: its config, its best model, its preprocessing."""

import keras

from kerascnn import layers as _layers  # noqa: F401 -- registers the custom layers best.keras may hold (LRN)
from kerascnn.data.preprocessing import Preprocessing
from kerascnn.record import RunRecord
from kerascnn.storage import rundir


def load_run(run_dir):
    """(config dict, best model, Preprocessing) of a finished or running run directory."""
    run_dir = rundir.require_run_dir(run_dir, need=(rundir.CONFIG, rundir.BEST))
    config = rundir.read_json(run_dir / rundir.CONFIG)
    record = RunRecord.from_dict(config.get("resolved"))
    if record.preprocessing is not None:
        preprocessing = Preprocessing.from_dict(record.preprocessing)
    else:  # runs written before the evaluation crop was recorded
        preprocessing = Preprocessing(record.image_size, tuple(record.mean), tuple(record.std))
    model = keras.saving.load_model(run_dir / rundir.BEST, compile=False)
    return config, model, preprocessing
