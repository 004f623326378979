"""--lookahead K: every K steps the weights meet a slow average (Zhang et al. 2019) on airbench's schedule."""

import json

import h5py
import keras
import numpy as np
import pytest

from kerascnn.config import OptimConfig, RunConfig
from kerascnn.errors import ConfigError
from kerascnn.storage import rundir
from kerascnn.training import callbacks
from kerascnn.training.fit import fit
from kerascnn.training.lookahead import Lookahead, lookahead_decay


def test_the_decay_rises_as_the_cube_of_the_run_fraction_to_airbenchs_end_value():
    assert lookahead_decay(0, 1000, 5) == 0.0
    assert lookahead_decay(500, 1000, 5) == pytest.approx(0.95**5 / 8)
    assert lookahead_decay(1000, 1000, 5) == pytest.approx(0.7738, abs=1e-4)  # airbench94's 0.95**5
    assert lookahead_decay(1500, 1000, 5) == lookahead_decay(1000, 1000, 5)  # past T: the end's decay
    assert lookahead_decay(1000, 1000, 1) == pytest.approx(0.95)


def _tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def test_every_kth_step_the_weights_move_to_the_decayed_mix_of_slow_and_fast_and_training_goes_on_from_it():
    model = _tiny_model()
    callback = Lookahead(every=2, total_steps=4)
    callback.set_model(model)
    start = [w.copy() for w in model.get_weights()]
    callback.on_train_begin()

    def step(weights):
        model.set_weights(weights)
        callback.on_train_batch_end(0)
        return [w.copy() for w in model.get_weights()]

    one = [w + 1.0 for w in start]
    np.testing.assert_array_equal(step(one)[0], one[0])  # step 1: no synchronisation
    two = [w + 3.0 for w in start]
    d = lookahead_decay(2, 4, 2)  # 0.95^2 / 8
    synced = step(two)
    for got, s, w in zip(synced, start, two):
        np.testing.assert_allclose(got, d * s + (1 - d) * w, rtol=1e-6)  # slow was the start
    # Steps 3 and 4: the slow weights are now the synchronised ones, and the decay is the end's.
    step([w + 1.0 for w in synced])
    four = [w + 2.0 for w in synced]
    last = step(four)
    for got, s, w in zip(last, synced, four):
        np.testing.assert_allclose(got, 0.95**2 * s + (1 - 0.95**2) * w, rtol=1e-6)
    # An epoch end at a synchronised step changes nothing; a later one synchronises.
    callback.on_epoch_end(0)
    np.testing.assert_array_equal(model.get_weights()[0], last[0])
    step([w + 1.0 for w in last])
    callback.on_train_end()  # stopped mid-way: training ends on the slow weights (decay 1)
    np.testing.assert_allclose(model.get_weights()[0], last[0], rtol=1e-6)


def test_a_run_with_lookahead_ends_every_epoch_on_the_slow_weights_which_checkpoint_and_backup_save(tmp_path, monkeypatch):
    made = []

    class Recorded(Lookahead):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(callbacks, "Lookahead", Recorded)

    class Watch(keras.callbacks.Callback):  # after the run's callbacks: sees what the epoch ended on
        def __init__(self):
            super().__init__()
            self.at_epoch_end, self.slow = [], []

        def on_epoch_end(self, epoch, logs=None):
            self.at_epoch_end.append([v.numpy().copy() for v in made[0]._variables()])
            self.slow.append([keras.ops.convert_to_numpy(s).copy() for s in made[0]._slow])

    watch = Watch()
    config = RunConfig.from_flags(
        "vgg11_bn", dataset="synthetic", limit_train=128, batch_size=32, epochs=2, val_split=0.25, lr=0.05,
        # K = 3 in 4-step epochs: the epoch's last step is no synchronisation step, so its end is
        # synchronised by the validation and epoch-end hooks alone.
        schedule="constant", precision="float32", lookahead=3, run_dir=str(tmp_path / "run"),
        model_options={"width_multiplier": 0.25},
    )
    result = fit(config, log=lambda *_: None, verbose=0, extra_callbacks=[watch])
    assert made[0].total_steps == 2 * 4  # 128 training images in batches of 32, two epochs
    for epoch in range(2):
        assert len(watch.slow[epoch]) == len(watch.at_epoch_end[epoch]) > 16  # batch-norm statistics included
        for w, s in zip(watch.at_epoch_end[epoch], watch.slow[epoch]):
            np.testing.assert_array_equal(w, s)
    assert any(not np.allclose(a, b) for a, b in zip(watch.slow[0], watch.slow[1]))
    assert json.loads((result.run_dir / rundir.CONFIG).read_text())["optim"]["lookahead"] == 3
    # The backup (the resume point) holds them too, so a resumed run starts with slow = w as this one had.
    with h5py.File(result.run_dir / rundir.BACKUP / "latest.weights.h5", "r") as f:
        saved = []
        f.visititems(lambda name, node: saved.append(node[()]) if isinstance(node, h5py.Dataset) else None)
    for slow in watch.slow[1]:
        assert any(s.shape == slow.shape and np.array_equal(s, slow) for s in saved)


def test_lookahead_and_ema_are_one_or_the_other_and_k_is_a_positive_count():
    with pytest.raises(ConfigError, match="--ema and --lookahead"):
        OptimConfig(ema=0.99, lookahead=5)
    with pytest.raises(ConfigError, match="lookahead"):
        OptimConfig(lookahead=0)
