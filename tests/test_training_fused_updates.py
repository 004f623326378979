"""One-kernel optimizer updates (kerascnn.training.fused_updates) do what Keras' own updates do."""

import json
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerascnn.config import OptimConfig
from kerascnn.training.fused_updates import FUSED, KINDS, fuse_updates, is_fused
from kerascnn.training.optim import build_optimizer

OPTIMIZERS = {
    "adam": lambda: keras.optimizers.Adam(0.01),
    "adamw": lambda: keras.optimizers.AdamW(0.01, weight_decay=0.05),
    "adam_ema_clipped": lambda: keras.optimizers.Adam(0.01, use_ema=True, ema_momentum=0.5, global_clipnorm=0.5),
    "sgd_momentum": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
    "sgd_nesterov_ema": lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True, use_ema=True, ema_momentum=0.5),
    "rmsprop": lambda: keras.optimizers.RMSprop(0.01),
    "rmsprop_momentum": lambda: keras.optimizers.RMSprop(0.01, momentum=0.5),
}


def _train(optimizer, graph, steps=5):
    """Weights after `steps` updates of two variables with fixed, step-dependent gradients."""
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(7, 5)).astype("float32"), rng.normal(size=(5,)).astype("float32")]
    grads = [[rng.normal(size=w.shape).astype("float32") for w in start] for _ in range(steps)]
    variables = [keras.Variable(w) for w in start]
    optimizer.build(variables)

    def apply(gradients):
        optimizer.apply(gradients, variables)

    apply = tf.function(apply) if graph else apply
    for g in grads:
        apply([tf.constant(x) for x in g])
    return [v.numpy() for v in variables], [v.numpy() for v in optimizer.variables]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
def test_the_fused_update_gives_keras_weights_and_slots(name, graph):
    fused = fuse_updates(OPTIMIZERS[name](), fused=KINDS)
    assert is_fused(fused) and not is_fused(OPTIMIZERS[name]())
    want_weights, want_slots = _train(OPTIMIZERS[name](), graph)
    got_weights, got_slots = _train(fused, graph)
    for got, want in zip(got_weights, want_weights):
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)
    # TensorFlow's Adam kernel takes 1 - beta_2 in float32 (1 - 0.999f = 0.00100005), Keras
    # in double (0.001): the second moment moves 5e-5 relatively more per step. The slots are
    # Keras' own, no more (RMSprop's scratch step stays out of them, and of saved files).
    assert len(got_slots) == len(want_slots)
    for got, want in zip(got_slots, want_slots):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
    assert not np.allclose(got_weights[0], _train(OPTIMIZERS[name](), graph, steps=1)[0][0])  # it trained


@pytest.mark.parametrize("make", [
    lambda: keras.optimizers.Adam(0.01, amsgrad=True),
    lambda: keras.optimizers.SGD(0.05),  # no momentum: no kernel needed
    lambda: keras.optimizers.RMSprop(0.01, centered=True),
], ids=["amsgrad", "sgd_no_momentum", "rmsprop_centered"])
def test_keras_own_update_where_the_kernel_does_not_apply(make):
    want = _train(make(), graph=True)
    got = _train(fuse_updates(make(), fused=KINDS), graph=True)
    np.testing.assert_allclose(got[0][0], want[0][0], rtol=1e-6)


def test_built_optimizers_are_fused_as_measured_and_save_as_plain_keras(tmp_path):
    for name in ("adam", "adamw", "sgd", "rmsprop"):
        kind = "adam" if name == "adamw" else name
        assert is_fused(build_optimizer(OptimConfig(optimizer=name), 10, 2)) == (kind in FUSED), name
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(build_optimizer(OptimConfig(optimizer="adam"), 10, 2), "mse")
    model.fit(np.ones((4, 3), "float32"), np.zeros((4, 2), "float32"), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    config = json.loads(zipfile.ZipFile(tmp_path / "m.keras").read("config.json"))
    assert config["compile_config"]["optimizer"]["class_name"] == "Adam"  # loads without kerascnn
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(reloaded.optimizer) is keras.optimizers.Adam and int(reloaded.optimizer.iterations) == 1
