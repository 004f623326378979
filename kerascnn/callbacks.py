"""Callbacks the training loop adds to Keras' own."""

import csv
import os
import pathlib
import time

import keras

MONITOR = "val_accuracy"


class EpochTimer(keras.callbacks.Callback):
    """Puts `epoch_seconds` and the current `learning_rate` into each epoch's logs.

    Listed before CSVLogger so both columns land in history.csv.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        logs["epoch_seconds"] = time.perf_counter() - self._start
        lr = self.model.optimizer.learning_rate
        logs.setdefault("learning_rate", float(keras.ops.convert_to_numpy(lr)))


def read_history(path):
    """Rows of a history.csv as dicts of floats (empty when the file is absent)."""
    try:
        with open(path, newline="") as f:
            return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]
    except FileNotFoundError:
        return []


def best_so_far(history, monitor=MONITOR):
    """(best value, 0-based epoch of it) in `history`, or (None, None)."""
    values = [row[monitor] for row in history if monitor in row]
    if not values:
        return None, None
    best = max(values)
    return best, values.index(best)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that, on a resumed run, continues counting from history.csv.

    Keras resets the best value and the wait counter when training begins;
    after a restart that would forget the epochs already run, so the run
    could never stop early at the right epoch.
    """

    def __init__(self, history, **kwargs):
        super().__init__(**kwargs)
        self._history = history

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        best, best_epoch = best_so_far(self._history, self.monitor)
        if best is not None:
            self.best = best
            self.best_epoch = best_epoch
            self.wait = len(self._history) - 1 - best_epoch


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the model with the best validation accuracy so far, atomically.

    Like ModelCheckpoint(save_best_only=True), with two differences: it saves
    the given inference model (a network's auxiliary classifiers are
    training-only and are left out), and it writes to a temporary file then renames, so a
    run killed while saving keeps its previous best checkpoint.

    Args:
        path: the `.keras` file.
        inference_model: the model to save (it shares the trained weights).
        initial_best: the best value of earlier epochs (a resumed run).
    """

    def __init__(self, path, inference_model, monitor=MONITOR, initial_best=None):
        super().__init__()
        self.path = pathlib.Path(path)
        self.inference_model = inference_model
        self.monitor = monitor
        self.best = initial_best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or (self.best is not None and value <= self.best):
            return
        self.best = value
        tmp = self.path.with_name(f".{self.path.stem}.tmp.keras")
        self.inference_model.save(tmp)
        os.replace(tmp, self.path)
