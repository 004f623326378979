"""Callbacks the training loop adds to Keras' own, and the list a run uses (`run_callbacks`)."""

import contextlib
import dataclasses
import json
import math
import os
import pathlib
import time

import keras
import numpy as np

from kerascnn import faults
from kerascnn.storage.atomic import remove_stale, temporary_prefix, write_text
from kerascnn.storage.history import read_history, write_history
from kerascnn.storage.rundir import BACKUP, BEST, HISTORY, TENSORBOARD
from kerascnn.training.averaging import AveragedWeights
from kerascnn.training.lookahead import Lookahead

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


class HistoryWriter(keras.callbacks.Callback):
    """history.csv, one row per finished epoch, rewritten atomically each epoch.

    Replaces CSVLogger, whose appends can leave a partial last line when a
    run is killed. Starts from the rows of earlier epochs (a resumed run,
    cut to the epochs its backup holds).
    """

    def __init__(self, path, rows=()):
        super().__init__()
        self.path = pathlib.Path(path)
        self.rows = [dict(r) for r in rows]

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch}
        row.update({k: float(v) for k, v in (logs or {}).items() if _is_number(v)})
        self.rows = [r for r in self.rows if int(r["epoch"]) < epoch] + [row]
        write_history(self.path, self.rows)


def _is_number(value):
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def non_finite(logs):
    """(key, value) of the first figure of `logs` that is NaN or infinite, among the loss and every
    validation figure (`val_*`); None when all are finite.

    A model that diverged may still score a finite training loss for the
    epoch (its weights broke after the last batch), but its validation loss
    is NaN: that epoch diverged too.
    """
    logs = logs or {}
    for key in ("loss", "val_loss", *sorted(k for k in logs if k.startswith("val_") and k != "val_loss")):
        value = logs.get(key)
        if value is not None and _is_number(value) and not math.isfinite(float(value)):
            return key, float(value)
    return None


BACKUP_METADATA = "training_metadata.json"
BACKUP_WEIGHTS = "latest.weights.h5"
SEED_GENERATORS = "seed_generators"  # the metadata's key for the layers' random state


def _seed_generators(model):
    """(name, SeedGenerator) of every layer of `model` that draws random numbers (dropout's masks).

    Keras saves a layer's variables but not its SeedGenerator's state, which a dropout layer
    advances at every training step: a resumed run would draw other masks than an unbroken one.
    The names are the layers' order and names, the same in any process that builds the run's model.
    """
    for index, layer in enumerate(model._flatten_layers(include_self=True, recursive=True)):
        for number, generator in enumerate(getattr(layer, "_seed_generators", None) or []):
            yield f"{index}:{layer.name}:{number}", generator


def seed_generator_states(model):
    """{name: state as a list of integers} of the model's SeedGenerators (JSON, beside the backup)."""
    return {name: keras.ops.convert_to_numpy(generator.state).tolist() for name, generator in _seed_generators(model)}


def set_seed_generator_states(model, states):
    """Put back the states `seed_generator_states` saved; a generator it does not name keeps its own."""
    for name, generator in _seed_generators(model):
        if name in states:
            generator.state.assign(np.asarray(states[name], dtype=generator.state.dtype))


def backup_epoch(backup_dir):
    """Epochs completed according to a BackupAndRestore folder; 0 when it holds none yet.

    No folder, or a folder without its metadata (a run stopped before its
    first epoch ended), is 0 epochs. A backup Keras could not restore is
    refused here, before anything is written, as one DataError line: a file
    where the folder should be, metadata that is not `{"epoch": N}` (empty,
    truncated, not JSON, unreadable), or weights that are not an HDF5 file.
    """
    from kerascnn.errors import DataError
    from kerascnn.storage import readback

    backup_dir = pathlib.Path(backup_dir)
    what = (f"the run's training state ({backup_dir.name}/) is damaged: delete {backup_dir} to train the run "
            "again from its first epoch, or start a new run from its weights (--weights RUN_DIR)")
    if not backup_dir.exists():
        return 0
    if not backup_dir.is_dir():
        raise DataError(f"{backup_dir} is a file, not the run's backup folder; {what}")
    weights = backup_dir / BACKUP_WEIGHTS
    if weights.exists() or weights.is_symlink():
        readback.check_hdf5(weights, what)
    for name in (BACKUP_METADATA, f"{BACKUP_METADATA}.bkp"):
        path = backup_dir / name
        if path.exists() or path.is_symlink():
            metadata = readback.read_json(path, what, required={"epoch": int})
            if metadata["epoch"] < 0:
                raise DataError(f"{path} has epoch {metadata['epoch']}; {what}")
            if metadata["epoch"] > 0 and not weights.exists():
                raise DataError(f"{weights} is missing (the weights of the epoch {path.name} names); {what}")
            return int(metadata["epoch"])
    return 0


class SafeBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that never backs up a diverged model, and keeps the last state.

    When an epoch ends with a non-finite loss or validation figure the previous backup is kept,
    so `--resume` starts again from the last good epoch. The backup is never
    deleted: when training ends normally it holds the last epoch's state
    (weights, optimizer, epoch, and the random state of the model's own layers), which
    `fit --resume RUN_DIR --epochs N` extends a finished run from (`kerascnn.training.extension`).
    """

    diverged = False

    def __init__(self, backup_dir, averaged=None):
        super().__init__(backup_dir, delete_checkpoint=False)
        self.averaged = averaged  # the run's AveragedWeights (--ema), whose average is in the model now

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        metadata = pathlib.Path(self.backup_dir) / BACKUP_METADATA
        if metadata.exists():
            # backup_epoch has read this file whole before training began (fit's resume check).
            set_seed_generator_states(self.model, json.loads(metadata.read_text()).get(SEED_GENERATORS, {}))

    def on_epoch_end(self, epoch, logs=None):
        if non_finite(logs) is not None:
            self.diverged = True
            return
        faults.point("backup.before")
        # The backup keeps the raw weights, which a resumed run steps on from.
        with self.averaged.raw_weights() if self.averaged else contextlib.nullcontext():
            super().on_epoch_end(epoch, logs)
        faults.point("backup.after")

    def _save_model(self):
        """The epoch's state, each of its two files published whole: weights first, then the epoch.

        Keras writes `latest.weights.h5` and `training_metadata.json` in place: a process killed
        during either write leaves a backup that cannot be read (the whole run lost to `--resume`).
        Here each goes to a temporary name and `os.replace`s the old one. The weights (with the
        optimizer's step, slots and weight average) go first, so the metadata never names an epoch
        whose weights are not on disk; a kill in the microseconds between the two renames leaves
        epoch k's weights under epoch k-1's number, and that epoch is trained once more.
        """
        backup_dir = pathlib.Path(self.backup_dir)
        backup_dir.mkdir(parents=True, exist_ok=True)
        remove_stale(backup_dir)  # temporary files of a process killed while writing the last backup
        weights = backup_dir / BACKUP_WEIGHTS
        # Keras saves weights only to a name ending in `.weights.h5`.
        tmp = weights.with_name(f"{temporary_prefix(weights)}{BACKUP_WEIGHTS}")
        try:
            self.model.save_weights(str(tmp), overwrite=True)
            faults.write_point(weights)
            os.replace(tmp, weights)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        write_text(backup_dir / BACKUP_METADATA, json.dumps({
            "epoch": self._current_epoch, "batch": self._last_batch_seen,
            SEED_GENERATORS: seed_generator_states(self.model),
        }))


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite, or the first epoch
    whose validation loss or metrics are, and remembers where.

    Unlike keras.callbacks.TerminateOnNaN it records the epoch and batch so
    the run can end with a message that names them. Under mixed_float16 the
    LossScaleOptimizer already skips steps whose gradients overflow; a
    non-finite *loss* that persists is divergence, not a scaling hiccup.

    `where` is None, or (epoch, batch, value, key): 1-based epoch; the
    1-based batch, or None when the validation at the epoch's end found it;
    the value; the figure ("loss", "val_loss", ...).
    """

    def __init__(self):
        super().__init__()
        self.where = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.where = (self._epoch + 1, batch + 1, float(loss), "loss")
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        bad = non_finite(logs)
        if bad is not None and self.where is None:
            key, value = bad
            self.where = (epoch + 1, None, value, key)
            self.model.stop_training = True


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


class ResumableReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau that, on a resumed run, continues its counters from history.csv.

    The learning rate itself lives in the optimizer and comes back with the backup, but Keras
    resets the best value, the wait and the cooldown when training begins: after a restart the
    next cut would come up to `patience` epochs late. The epochs already run are replayed here
    through Keras' own rule (an improvement is `value - min_delta` beyond the best; a cut
    happens after `patience` epochs without one, outside the cooldown, when the epoch's
    learning rate was above `min_lr`), so the counters are the ones an unbroken run would hold.
    """

    def __init__(self, history, **kwargs):
        super().__init__(**kwargs)
        self._history = history

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.monitor_op is None:
            self._set_monitor_op()
        for row in self._history:
            value = row.get(self.monitor)
            if value in (None, ""):
                continue
            value = float(value)
            if self.in_cooldown():
                self.cooldown_counter -= 1
                self.wait = 0
            if self._is_improvement(value, self.best):
                self.best, self.wait = value, 0
            elif not self.in_cooldown():
                self.wait += 1
                # history's learning_rate is the epoch's own, logged before the cut at its end
                # (a history without the column is taken to have been above the floor).
                rate = row.get("learning_rate")
                above_floor = rate in (None, "") or float(rate) > float(np.float32(self.min_lr))
                if self.wait >= self.patience and above_floor:
                    self.cooldown_counter, self.wait = self.cooldown, 0


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the model with the best validation accuracy so far, atomically.

    Like ModelCheckpoint(save_best_only=True), with two differences: it saves
    the given inference model (a network's auxiliary classifiers are
    training-only and are left out), and it writes to a temporary file then renames, so a
    run killed while saving keeps its previous best checkpoint.

    Args:
        path: the `.keras` file.
        inference_model: the model to save (it shares the trained weights).
        monitor: the validation metric to maximise; None (a run without a
            validation set, `--val-split 0`) saves every epoch, so the file
            holds the last epoch's model.
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
        # A diverged model's NaN logits argmax to class 0, which can score
        # above a weak earlier epoch: never let it replace a real checkpoint.
        if non_finite(logs) is not None:
            return
        if self.monitor is not None:
            if value is None or (self.best is not None and value <= self.best):
                return
            self.best = value
        tmp = self.path.with_name(f"{temporary_prefix(self.path)}best.keras")
        try:
            self.inference_model.save(tmp)
            faults.point("checkpoint.best")
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk must not leave half a model beside the good one
            raise


class FaultPoints(keras.callbacks.Callback):
    """The phases of an epoch as `kerascnn.faults` points (no-ops outside the tests)."""

    def on_train_batch_end(self, batch, logs=None):
        faults.point("train.batch")

    def on_test_batch_end(self, batch, logs=None):
        faults.point("validation.batch")

    def on_epoch_end(self, epoch, logs=None):
        faults.point("epoch.end")


@dataclasses.dataclass
class RunCallbacks:
    """The Keras callbacks of a run, and the one `train` asks afterwards."""

    callbacks: list
    stopper: StopOnNonFinite


def run_callbacks(
    config, run_dir, first_epoch, checkpoint_model, extra=(), before=(), validate=True, train_batches=None,
    global_batch=None, steps_per_epoch=None,
):
    """Phase 7: the callbacks of a run, in the order they must run.

    Args:
        config: the RunConfig (schedule, patience).
        run_dir: where history.csv, the backup, best.keras and TensorBoard go.
        first_epoch: epochs the backup holds; rows of history.csv from a
            later, unsaved epoch are dropped and redone.
        checkpoint_model: what best.keras saves (the inference model).
        extra: callbacks appended at the end (`fit(extra_callbacks=...)`); one
            with an `averaged_weights` attribute gets the run's `AveragedWeights`
            there (None without --ema).
        before: callbacks that must run before the history writer, which
            records their columns (--freeze-backbone's `backbone_frozen`).
        validate: whether the run has a validation set; without one
            (`--val-split 0`) best.keras is the last epoch's model.
        train_batches, global_batch: the training stream and its batch, from
            which --ema's average gets its batch-norm statistics
            (`kerascnn.training.averaging`); None keeps the raw weights'.
        steps_per_epoch: the steps of an epoch, from which --lookahead's
            schedule knows the run's length (`kerascnn.training.lookahead`).
    """
    run_dir = pathlib.Path(run_dir)
    history = [row for row in read_history(run_dir / HISTORY, missing_ok=True) if int(row["epoch"]) < first_epoch]
    best_value, _ = best_so_far(history)
    stopper = StopOnNonFinite()
    averaged = AveragedWeights(train_batches, global_batch) if config.optim.ema is not None else None
    lookahead = None
    if config.optim.lookahead is not None:
        lookahead = Lookahead(config.optim.lookahead, config.epochs * steps_per_epoch)
    callbacks = [
        *before,
        # Before everything that judges or saves the model at an epoch's end, and before the
        # timer, so that an epoch's seconds include the average's batch-norm statistics pass
        # and the lookahead's last synchronisation.
        *([averaged] if averaged else []),
        *([lookahead] if lookahead else []),
        EpochTimer(),
        stopper,
        HistoryWriter(run_dir / HISTORY, history),
        BestCheckpoint(run_dir / BEST, checkpoint_model, monitor=MONITOR if validate else None, initial_best=best_value),
        keras.callbacks.TensorBoard(str(run_dir / TENSORBOARD), profile_batch=0, write_graph=False),
    ]
    if config.optim.schedule == "plateau":
        callbacks.append(
            ResumableReduceLROnPlateau(
                history, monitor=MONITOR, mode="max", factor=config.optim.lr_decay,
                patience=config.optim.plateau_patience, verbose=1,
            )
        )
    if config.patience:
        callbacks.append(ResumableEarlyStopping(history, monitor=MONITOR, mode="max", patience=config.patience))
    # The resume point comes after every file and every state change of the epoch: a run killed
    # before it redoes the whole epoch (history row, checkpoint, learning-rate decay) from the
    # previous backup; killed after it, the epoch is complete on disk.
    callbacks.append(SafeBackupAndRestore(str(run_dir / BACKUP), averaged))
    for callback in extra:
        # A callback that tests the model after an epoch (benchmarks/time_to_accuracy.py) and
        # declares `averaged_weights` gets the run's holder, to test the raw weights beside the average.
        if hasattr(callback, "averaged_weights"):
            callback.averaged_weights = averaged
    callbacks.extend(extra)
    callbacks.append(FaultPoints())  # last: `epoch.end` comes after every file of the epoch
    return RunCallbacks(callbacks, stopper)
