"""fit(): a real training run on generated data, its run directory, resume."""

import json
import math

import h5py

import keras
import numpy as np
import pytest

from kerascnn.storage import rundir
from kerascnn.training import callbacks as cb
from kerascnn.config import RunConfig
from kerascnn.errors import ConfigError
from kerascnn.runtime.onednn import onednn_enabled
from kerascnn.training.fit import fit
from interrupt import StopAfter


def tiny_config(tmp_path, **flags):
    settings = dict(
        dataset="synthetic",
        limit_train=256,
        batch_size=32,
        epochs=1,
        schedule="constant",
        run_dir=str(tmp_path / "run"),
        model_options={"width_multiplier": 0.25},
    )
    settings.update(flags)
    return RunConfig.from_flags(settings.pop("model", "vgg11"), **settings)


def test_one_epoch_on_synthetic_data_lowers_the_loss_and_fills_the_run_dir(tmp_path):
    # Batch norm, because a plain VGG's escape from its initial plateau takes a
    # variable number of steps; 32 steps, because after fewer the moving
    # statistics used at test time still lag the fast-changing weights.
    # No augmentation: the synthetic classes are spatial patterns that flips
    # and shifts make harder to learn in one epoch.
    config = tiny_config(
        tmp_path,
        model="vgg11_bn",
        model_options={"width_multiplier": 0.5},
        limit_train=1024,
        batch_size=32,
        augment="none",
    )
    result = fit(config, log=lambda *_: None, verbose=0)
    run = result.run_dir
    metrics = json.loads((run / rundir.METRICS).read_text())
    # Chance level is cross-entropy ln 10 = 2.30 and accuracy 0.1.
    history = [row for row in np.genfromtxt(run / rundir.HISTORY, delimiter=",", names=True, ndmin=1)]
    assert len(history) == 1
    assert metrics["test_loss"] < math.log(10) - 0.3
    assert metrics["test_accuracy"] > 0.3
    assert set(metrics) >= {
        "test_accuracy", "test_loss", "best_val_accuracy", "best_epoch", "params",
        "seconds_per_epoch", "overfitting_gap", "final_train_accuracy",
    }
    assert metrics["overfitting_gap"] == pytest.approx(metrics["final_train_accuracy"] - metrics["test_accuracy"])
    # Flip test-time augmentation is reported beside the plain figure; the tested model is the best-validation one.
    assert 0.0 <= metrics["test_flip_accuracy"] <= 1.0 and metrics["test_flip_loss"] > 0
    assert metrics["model_epoch"] == metrics["best_epoch"] == 1
    config = json.loads((run / rundir.CONFIG).read_text())
    assert config["model"] == "vgg11_bn" and len(config["resolved"]["mean"]) == 3
    assert config["resolved"]["num_train"] == 1024 and config["resolved"]["class_names"][0] == "class_0"
    # Which CPU kernels ran (oneDNN's or Eigen's: the last bits of float32 results differ).
    assert config["resolved"]["versions"]["tensorflow_onednn"] is onednn_enabled()
    assert (run / rundir.BEST).exists() and (run / rundir.CURVES).stat().st_size > 0
    assert any((run / rundir.TENSORBOARD).rglob("*tfevents*"))
    # Kept once training finished: the last epoch's state, which `--resume --epochs N` extends from.
    assert cb.backup_epoch(run / rundir.BACKUP) == 1


def test_an_interrupted_run_resumes_from_its_last_completed_epoch(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, epochs=3, limit_train=128, pca_jitter=True)
    with pytest.raises(KeyboardInterrupt):
        fit(config, log=lambda *_: None, verbose=0, extra_callbacks=[StopAfter(1)])
    run = tmp_path / "run"
    assert (run / rundir.BACKUP).exists() and not (run / rundir.METRICS).exists()
    with pytest.raises(ConfigError, match="not empty"):
        fit(config, log=lambda *_: None, verbose=0)  # never overwrites a run

    epochs_seen = []
    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epochs_seen.append(epoch)

    # The resumed run reuses the stored statistics and PCA instead of re-measuring them.
    import kerascnn.data.pipeline as pipeline

    monkeypatch.setattr(pipeline, "pixel_moments", lambda *a, **k: pytest.fail("statistics re-measured"))
    fit(resume_dir=run, log=lambda *_: None, verbose=0, extra_callbacks=[Record()])
    assert epochs_seen == [2]  # epochs 0 and 1 were not redone
    epochs = np.genfromtxt(run / rundir.HISTORY, delimiter=",", names=True)["epoch"]
    assert list(epochs) == [0, 1, 2]
    assert json.loads((run / rundir.METRICS).read_text())["epochs_run"] == 3
    with pytest.raises(ConfigError, match="already finished"):
        fit(resume_dir=run, log=lambda *_: None, verbose=0)


def test_alexnet_augmentation_records_its_pca_and_reports_ten_patch_accuracy(tmp_path):
    config = tiny_config(tmp_path, augment="alexnet", tta=True, cutout=4, limit_train=64)
    result = fit(config, log=lambda *_: None, verbose=0)
    resolved = json.loads((result.run_dir / rundir.CONFIG).read_text())["resolved"]
    pca = resolved["augmentation"]["pca"]
    assert resolved["augmentation"]["preset"] == "alexnet" and len(pca["eigenvalues"]) == 3
    assert pca["eigenvalues"] == sorted(pca["eigenvalues"], reverse=True)
    # Evaluation (and so the export) takes the centre 32 of the 37-pixel resize.
    assert resolved["preprocessing"]["resize_to"] == [37, 37]
    assert 0.0 <= result.metrics["test_tta_accuracy"] <= 1.0
    # The stored PCA rebuilds the layer from the config alone.
    from kerascnn.layers import PCAColorJitter

    layer = PCAColorJitter(**pca, sigma=0.1, scale="stddev", seed=0)
    assert layer(np.zeros((2, 4, 4, 3), np.float32), training=True).shape == (2, 4, 4, 3)


def test_val_split_zero_trains_on_everything_and_tests_the_last_epochs_model(tmp_path):
    last = {}

    class LastWeights(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            last["weights"] = [w.copy() for w in self.model.get_weights()]

    config = tiny_config(tmp_path, epochs=2, limit_train=128, val_split=0.0, schedule="onecycle", warmup_epochs=0.5)
    result = fit(config, log=lambda *_: None, verbose=0, extra_callbacks=[LastWeights()])
    saved = json.loads((result.run_dir / rundir.CONFIG).read_text())["resolved"]
    assert saved["num_train"] == 128 and saved["num_val"] == 0
    history = np.genfromtxt(result.run_dir / rundir.HISTORY, delimiter=",", names=True)
    assert not any(name.startswith("val_") for name in history.dtype.names)
    assert result.metrics["best_val_accuracy"] is None and result.metrics["model_epoch"] == 2
    for tested, trained in zip(result.model.get_weights(), last["weights"]):
        np.testing.assert_array_equal(tested, trained)  # best.keras holds the last epoch, not a test-chosen one
    with pytest.raises(ConfigError, match="no validation set"):
        tiny_config(tmp_path, val_split=0.0, patience=2)


def test_ema_puts_the_weight_average_and_its_own_batch_norm_statistics_in_the_model_between_epochs(tmp_path):
    """--ema: the optimizer steps the raw weights; checkpoint, per-epoch callbacks and the result see the average,
    with batch-norm statistics recomputed for it (SWA's update_bn); training goes on with the raw weights' own."""

    def statistics(model):
        return [v.numpy().copy() for v in model.non_trainable_weights if "moving" in v.path]

    class Watch(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.raw_after_last_step, self.at_epoch_end, self.average, self.at_epoch_begin = [], [], [], []
            self.raw_statistics, self.statistics_at_end, self.statistics_at_begin = [], [], []

        def on_train_batch_end(self, batch, logs=None):
            self.last_step = [w.numpy().copy() for w in self.model.trainable_weights]
            self.last_statistics = statistics(self.model)

        def on_epoch_begin(self, epoch, logs=None):
            self.at_epoch_begin.append([w.numpy().copy() for w in self.model.trainable_weights])
            self.statistics_at_begin.append(statistics(self.model))

        def on_epoch_end(self, epoch, logs=None):
            self.raw_after_last_step.append(self.last_step)
            self.raw_statistics.append(self.last_statistics)
            self.at_epoch_end.append([w.numpy().copy() for w in self.model.trainable_weights])
            self.statistics_at_end.append(statistics(self.model))
            self.average.append([v.numpy().copy() for v in self.model.optimizer._model_variables_moving_average])

    watch = Watch()
    config = tiny_config(
        tmp_path, model="vgg11_bn", epochs=2, limit_train=128, val_split=0.25, ema=0.5, lr=0.05, precision="float32"
    )
    result = fit(config, log=lambda *_: None, verbose=0, extra_callbacks=[watch])
    for epoch in range(2):
        for seen, average, raw in zip(watch.at_epoch_end[epoch], watch.average[epoch], watch.raw_after_last_step[epoch]):
            np.testing.assert_array_equal(seen, average)
        assert any(not np.allclose(a, r) for a, r in zip(watch.average[epoch], watch.raw_after_last_step[epoch]))
        assert len(watch.statistics_at_end[epoch]) == 16  # 8 batch-norm layers' means and variances
        for average, raw in zip(watch.statistics_at_end[epoch], watch.raw_statistics[epoch]):
            assert not np.allclose(average, raw)
    # The second epoch stepped on from the raw weights and their statistics, not from the average.
    for begin, raw in zip(watch.at_epoch_begin[1], watch.raw_after_last_step[0]):
        np.testing.assert_array_equal(begin, raw)
    for begin, raw in zip(watch.statistics_at_begin[1], watch.raw_statistics[0]):
        np.testing.assert_array_equal(begin, raw)
    tested = result.metrics["model_epoch"]  # best.keras: the best validation epoch, 1-based
    for final, average in zip(result.model.trainable_weights, watch.average[tested - 1]):
        np.testing.assert_array_equal(final.numpy(), average)
    for final, average in zip(statistics(result.model), watch.statistics_at_end[tested - 1]):
        np.testing.assert_array_equal(final, average)
    assert json.loads((result.run_dir / rundir.CONFIG).read_text())["optim"]["ema"] == 0.5
    # The backup (the resume point, written last in the epoch) holds the raw weights and statistics.
    with h5py.File(result.run_dir / rundir.BACKUP / "latest.weights.h5", "r") as f:
        saved = []
        f.visititems(lambda name, node: saved.append(node[()]) if isinstance(node, h5py.Dataset) else None)
    for raw in watch.raw_after_last_step[1] + watch.raw_statistics[1]:
        assert any(s.shape == raw.shape and np.array_equal(s, raw) for s in saved)
    with pytest.raises(ConfigError, match="ema must be a number in"):
        tiny_config(tmp_path, ema=1.0)
