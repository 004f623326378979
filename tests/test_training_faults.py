"""Runs that survive being killed, diverging, running out of memory."""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import fill_weights_with_nan
from kerascnn.runtime import batch_size as auto_batch
from kerascnn.training import callbacks as cb
from kerascnn.storage.history import read_history, write_history
from kerascnn.storage import rundir
from kerascnn.config import RunConfig
from kerascnn.errors import UserError
from kerascnn.training.fit import fit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Three epochs of a small VGG on generated data, with everything a resume
# must restore: momentum, a cosine schedule, early-stopping state,
# per-epoch augmentation (crop, flip, PCA jitter), and dropout, whose masks
# come from the layers' random state (kept beside the backup).
SETTINGS = dict(
    dataset="synthetic", limit_train=256, batch_size=32, epochs=3, patience=5, pca_jitter=True, seed=5,
    model_options={"width_multiplier": 0.25, "dropout": 0.5},
)

# That run in a process of its own, which SIGKILLs itself in the fourth batch of its second epoch.
SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from kerascnn.runtime.quiet import import_tensorflow_quietly
    import_tensorflow_quietly()
    import keras
    from kerascnn.config import RunConfig
    from kerascnn.training.fit import fit

    class KillMidEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == 3:
                os.kill(os.getpid(), signal.SIGKILL)

    config = RunConfig.from_flags("vgg8", run_dir=sys.argv[1], **{settings!r})
    fit(config, verbose=0, extra_callbacks=[KillMidEpoch()])
    """
)


def _run(args, cwd, timeout=300):
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def _weights(path):
    return keras.saving.load_model(path, compile=False).get_weights()


def test_a_run_killed_mid_epoch_resumes_to_the_same_result(tmp_path):
    from kerascnn.cli.app import main

    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(root=ROOT, settings=SETTINGS))
    killed, reference = tmp_path / "killed", tmp_path / "reference"

    # The uninterrupted reference, in this process: the same settings and seed.
    fit(RunConfig.from_flags("vgg8", run_dir=str(reference), **SETTINGS), log=lambda *_: None, verbose=0)

    run = _run([str(script), str(killed)], tmp_path)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    assert not (killed / rundir.METRICS).exists()
    assert cb.backup_epoch(killed / rundir.BACKUP) == 1  # epoch 0 done, epoch 1 cut at batch 4
    assert [int(r["epoch"]) for r in read_history(killed / rundir.HISTORY)] == [0]

    # The resume a user types, through `main` (what main.py calls) in this process: only the
    # killed run needs an interpreter of its own (a TensorFlow start-up costs seconds).
    assert main(["fit", "--resume", str(killed)]) == 0

    history = read_history(killed / rundir.HISTORY)
    assert [int(r["epoch"]) for r in history] == [0, 1, 2]  # no gap, no duplicate
    assert json.loads((killed / rundir.METRICS).read_text())["epochs_run"] == 3
    assert cb.backup_epoch(killed / rundir.BACKUP) == 3  # the last epoch's state, kept to extend from
    # Same weights, optimizer state, schedule position and data order as a run
    # that was never interrupted: the same numbers, epoch by epoch.
    expected = read_history(reference / rundir.HISTORY)
    for got, want in zip(history, expected):
        for key in ("loss", "accuracy", "val_accuracy", "learning_rate"):
            assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), (key, got["epoch"])
    for a, b in zip(_weights(killed / rundir.BEST), _weights(reference / rundir.BEST)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def tiny(tmp_path, **flags):
    settings = dict(
        dataset="synthetic", limit_train=128, batch_size=32, epochs=3, schedule="constant",
        run_dir=str(tmp_path / "run"), model_options={"width_multiplier": 0.125},
    )
    settings.update(flags)
    return RunConfig.from_flags("vgg8", **settings)


class PoisonWeights(keras.callbacks.Callback):
    """Sets every weight to NaN after a given batch of a given epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 1:
            fill_weights_with_nan(self.model)


def test_a_diverging_run_stops_naming_epoch_and_batch_and_keeps_the_good_checkpoint(tmp_path):
    with pytest.raises(UserError, match=r"loss became nan at epoch 2, batch 3") as error:
        fit(tiny(tmp_path), log=lambda *_: None, verbose=0, extra_callbacks=[PoisonWeights()])
    assert isinstance(error.value, UserError)
    run = tmp_path / "run"
    assert not (run / rundir.METRICS).exists()
    assert all(np.all(np.isfinite(w)) for w in _weights(run / rundir.BEST))
    assert cb.backup_epoch(run / rundir.BACKUP) == 1  # the diverged epoch was not backed up


class OutOfMemoryAtFirstBatch(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape [32,64,32,32]")


def test_out_of_memory_is_one_clear_line(tmp_path):
    with pytest.raises(auto_batch.OutOfMemory) as error:
        fit(tiny(tmp_path), log=lambda *_: None, verbose=0, extra_callbacks=[OutOfMemoryAtFirstBatch()])
    message = str(error.value)
    assert "vgg8 at 32x32 with batch 32" in message and "--batch-size 16" in message
    assert "mixed_float16" in message and "\n" not in message


def test_batch_size_auto_takes_the_largest_power_of_two_that_fits(tmp_path, monkeypatch):
    tried = []

    def fake_step(build, input_shape, num_classes, batch, strategy):
        tried.append(batch)
        return batch <= 64

    monkeypatch.setattr(auto_batch, "try_step", fake_step)
    result = fit(tiny(tmp_path, batch_size="auto", epochs=1), log=lambda *_: None, verbose=0)
    resolved = json.loads((result.run_dir / rundir.CONFIG).read_text())["resolved"]
    assert tried == [1024, 512, 256, 128, 64]
    assert resolved["batch_size"] == 64 and resolved["global_batch"] == 64


def test_try_step_runs_a_real_step_and_reports_memory_errors():
    strategy = tf.distribute.get_strategy()

    def build():
        inputs = keras.Input((8, 8, 3))
        model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
        model.compile("sgd", keras.losses.CategoricalCrossentropy(from_logits=True))
        return model

    def build_too_big():
        raise tf.errors.ResourceExhaustedError(None, None, "OOM")

    assert auto_batch.try_step(build, (8, 8, 3), 3, 4, strategy)
    assert not auto_batch.try_step(build_too_big, (8, 8, 3), 3, 4, strategy)


def test_try_step_keeps_the_mixed_precision_policy():
    """clear_session resets Keras' global state; the search must not drop --precision."""
    strategy = tf.distribute.get_strategy()

    def build():
        inputs = keras.Input((4, 4, 3))
        model = keras.Model(inputs, keras.layers.Dense(3, dtype="float32")(keras.layers.Flatten()(inputs)))
        model.compile("sgd", keras.losses.CategoricalCrossentropy(from_logits=True))
        return model

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        assert auto_batch.try_step(build, (4, 4, 3), 3, 2, strategy)
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_history_is_rewritten_atomically(tmp_path):
    path = tmp_path / "history.csv"
    write_history(path, [{"epoch": 0, "loss": 1.5}, {"epoch": 1, "loss": 1.25, "accuracy": 0.5}])
    rows = read_history(path)
    assert rows == [{"epoch": 0.0, "loss": 1.5}, {"epoch": 1.0, "loss": 1.25, "accuracy": 0.5}]
    assert [p.name for p in tmp_path.iterdir()] == ["history.csv"]  # no temporary left behind
    assert math.isnan(read_history(_write_nan(tmp_path))[0]["loss"])


def _write_nan(tmp_path):
    path = tmp_path / "nan.csv"
    write_history(path, [{"epoch": 0, "loss": float("nan")}])
    return path


class PoisonAfterLastBatch(keras.callbacks.Callback):
    """Sets every weight to NaN after the last training batch of `epoch` (0-based): the epoch's
    training loss stays finite, only what comes after it (validation, test) sees the NaN."""

    def __init__(self, epoch):
        super().__init__()
        self.poison_epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == self.poison_epoch and batch == self.params["steps"] - 1:
            fill_weights_with_nan(self.model)


def test_a_nan_validation_loss_is_divergence_and_nothing_of_that_epoch_is_kept(tmp_path):
    with pytest.raises(UserError, match=r"^the validation loss became nan at epoch 2; training stopped\. "):
        fit(tiny(tmp_path), log=lambda *_: None, verbose=0, extra_callbacks=[PoisonAfterLastBatch(1)])
    run = tmp_path / "run"
    assert not (run / rundir.METRICS).exists()
    assert all(np.all(np.isfinite(w)) for w in _weights(run / rundir.BEST))  # epoch 1's model
    assert cb.backup_epoch(run / rundir.BACKUP) == 1  # the diverged epoch was not backed up
    assert [int(r["epoch"]) for r in read_history(run / rundir.HISTORY)] == [0, 1]  # stopped after epoch 2


def test_a_run_diverged_in_its_first_epoch_does_not_claim_a_checkpoint(tmp_path):
    with pytest.raises(UserError, match=r"validation loss became nan at epoch 1; .* holds no checkpoint;") as error:
        fit(tiny(tmp_path, epochs=1), log=lambda *_: None, verbose=0, extra_callbacks=[PoisonAfterLastBatch(0)])
    assert "are kept" not in str(error.value)
    assert not (tmp_path / "run" / rundir.BEST).exists()


def test_a_model_that_tests_nan_is_divergence_not_a_result(tmp_path):
    # No validation set: the last epoch's model is tested, and it broke after its last batch.
    config = tiny(tmp_path, val_split=0.0, epochs=2)
    with pytest.raises(UserError, match=r"^the test loss of the tested model \(epoch 2\) is nan: the run diverged"):
        fit(config, log=lambda *_: None, verbose=0, extra_callbacks=[PoisonAfterLastBatch(1)])
    assert not (tmp_path / "run" / rundir.METRICS).exists()


def test_the_cli_ends_a_run_diverged_at_validation_in_one_line_with_status_2(tmp_path, monkeypatch, capsys):
    import importlib

    from kerascnn.cli.app import main

    fit_module = importlib.import_module("kerascnn.training.fit")

    run_callbacks = fit_module.run_callbacks

    def with_poison(config, run_dir, first_epoch, checkpoint_model, extra=(), *rest, **kwargs):
        return run_callbacks(config, run_dir, first_epoch, checkpoint_model, [PoisonAfterLastBatch(0)], *rest, **kwargs)

    monkeypatch.setattr(fit_module, "run_callbacks", with_poison)
    monkeypatch.chdir(tmp_path)
    argv = ["fit", "vgg8", "--dataset", "synthetic", "--limit-train", "128", "--batch-size", "32", "--epochs", "2",
            "--width-multiplier", "0.125", "--run-dir", "run"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("kerascnn fit: error: the validation loss became nan at epoch 1; training stopped."), err
    assert not (tmp_path / "run" / rundir.METRICS).exists()
