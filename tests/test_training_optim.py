import keras
import numpy as np
import pytest
import tensorflow as tf

from kerascnn.config import OptimConfig
from kerascnn.errors import ConfigError
from kerascnn.training.optim import build_optimizer, learning_rate
from kerascnn.models import create_model


def test_cosine_warms_up_then_decays_to_zero():
    schedule = learning_rate(OptimConfig(lr=0.1, warmup_epochs=1), steps_per_epoch=10, epochs=5)
    assert float(schedule(0)) == pytest.approx(0.0, abs=1e-9)
    assert float(schedule(10)) == pytest.approx(0.1)
    assert float(schedule(30)) == pytest.approx(0.05, rel=1e-5)  # halfway through the decay
    assert float(schedule(50)) == pytest.approx(0.0, abs=1e-7)


def test_step_schedule_divides_by_ten_every_step_epochs():
    schedule = learning_rate(OptimConfig(lr=0.1, schedule="step", step_epochs=2), steps_per_epoch=5, epochs=6)
    assert [round(float(schedule(s)), 6) for s in (0, 9, 10, 20)] == [0.1, 0.1, 0.01, 0.001]


def test_warmup_is_only_for_cosine_and_must_fit_in_the_run():
    with pytest.raises(ConfigError):
        learning_rate(OptimConfig(schedule="step", warmup_epochs=1), 10, 5)
    with pytest.raises(ConfigError):
        learning_rate(OptimConfig(warmup_epochs=5), 10, 5)


@pytest.mark.parametrize("name, cls", [("sgd", "SGD"), ("adam", "Adam"), ("adamw", "AdamW"), ("rmsprop", "RMSprop")])
def test_each_optimizer_is_built_with_its_settings(name, cls):
    opt = build_optimizer(OptimConfig(optimizer=name, nesterov=True, clip_norm=1.0), 10, 2)
    assert type(opt).__name__ == cls
    assert opt.global_clipnorm == 1.0
    if name == "sgd":
        assert opt.momentum == 0.9 and opt.nesterov
    if name == "adamw":
        assert opt.weight_decay == 5e-4


def test_onecycle_rises_linearly_to_the_peak_then_falls_linearly_to_zero():
    schedule = learning_rate(OptimConfig(lr=0.4, schedule="onecycle", warmup_epochs=2), steps_per_epoch=10, epochs=10)
    values = [float(schedule(s)) for s in (0, 10, 20, 60, 100, 120)]
    assert values == pytest.approx([0.0, 0.2, 0.4, 0.2, 0.0, 0.0], abs=1e-6)
    no_warmup = learning_rate(OptimConfig(lr=0.1, schedule="onecycle"), steps_per_epoch=10, epochs=2)
    assert [float(no_warmup(s)) for s in (0, 10, 20)] == pytest.approx([0.1, 0.05, 0.0], abs=1e-7)


def test_cosine_and_onecycle_end_at_the_final_fraction_of_the_peak():
    """airbench94's one-cycle: up to the peak, then linear to 0.07 of it (Jordan 2024); cosine's Keras alpha."""
    onecycle = learning_rate(
        OptimConfig(lr=0.4, schedule="onecycle", warmup_epochs=2, final_lr_fraction=0.1), steps_per_epoch=10, epochs=10
    )
    assert [float(onecycle(s)) for s in (0, 20, 60, 100, 120)] == pytest.approx([0.0, 0.4, 0.22, 0.04, 0.04], abs=1e-6)
    cosine = learning_rate(OptimConfig(lr=0.1, warmup_epochs=1, final_lr_fraction=0.2), steps_per_epoch=10, epochs=5)
    # lr * (f + (1 - f) / 2 * (1 + cos(pi * t / T))): the peak, the midpoint 0.06, the floor 0.02.
    assert [float(cosine(s)) for s in (10, 30, 50)] == pytest.approx([0.1, 0.06, 0.02], rel=1e-5)
    with pytest.raises(ConfigError, match="final-lr-fraction works with"):
        OptimConfig(schedule="step", final_lr_fraction=0.1)
    with pytest.raises(ConfigError, match="final_lr_fraction"):
        OptimConfig(schedule="onecycle", final_lr_fraction=1.0)


def test_the_warm_up_starts_at_the_initial_fraction_of_the_peak():
    """airbench94's triangle rises from 0.2 of its peak (Jordan 2024); cosine's warm-up from the same point."""
    onecycle = learning_rate(
        OptimConfig(lr=0.5, schedule="onecycle", warmup_epochs=2, initial_lr_fraction=0.2, final_lr_fraction=0.1),
        steps_per_epoch=10, epochs=10,
    )
    assert [float(onecycle(s)) for s in (0, 10, 20, 100)] == pytest.approx([0.1, 0.3, 0.5, 0.05], abs=1e-6)
    cosine = learning_rate(OptimConfig(lr=0.1, warmup_epochs=1, initial_lr_fraction=0.5), steps_per_epoch=10, epochs=5)
    assert [float(cosine(s)) for s in (0, 5, 10)] == pytest.approx([0.05, 0.075, 0.1], rel=1e-5)
    for bad in (dict(schedule="step"), dict(schedule="onecycle", warmup_epochs=0), dict(schedule="cosine", warmup_epochs=0)):
        with pytest.raises(ConfigError, match="initial-lr-fraction is where a warm-up starts"):
            OptimConfig(initial_lr_fraction=0.2, **{"warmup_epochs": 1, **bad})
    with pytest.raises(ConfigError, match="initial_lr_fraction"):
        OptimConfig(schedule="onecycle", warmup_epochs=1, initial_lr_fraction=1.0)


def test_onecycle_schedule_survives_a_serialisation_round_trip():
    import keras

    schedule = learning_rate(OptimConfig(lr=0.4, schedule="onecycle", warmup_epochs=1), 5, 4)
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert type(restored).__name__ == "PiecewiseLinear"
    assert float(restored(5)) == pytest.approx(0.4)  # the peak, after 1 epoch
    assert float(restored(20)) == pytest.approx(0.0, abs=1e-7)
    optimizer = build_optimizer(OptimConfig(lr=0.4, schedule="onecycle", warmup_epochs=1, nesterov=True), 5, 4)
    assert optimizer.nesterov and keras.optimizers.deserialize(keras.optimizers.serialize(optimizer)).nesterov



@pytest.mark.parametrize("nesterov", [False, True])
def test_bn_bias_lr_scale_moves_only_the_batch_norm_offsets_that_many_times_further(nesterov):
    """One SGD-momentum step on the same gradients: beta moves 8x as far, every other weight the same."""
    import keras

    def one_step(scale):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((4, 4, 3))
        x = keras.layers.Conv2D(2, 3, use_bias=False, name="conv")(inputs)
        x = keras.layers.BatchNormalization(name="bn")(x)
        model = keras.Model(inputs, keras.layers.Dense(1, name="head")(keras.layers.Flatten()(x)))
        before = {w.path: np.array(w) for w in model.trainable_weights}
        optimizer = build_optimizer(
            OptimConfig(lr=0.1, momentum=0.9, nesterov=nesterov, schedule="constant", bn_bias_lr_scale=scale),
            steps_per_epoch=2, epochs=1,
        )
        images = np.random.default_rng(1).normal(size=(8, 4, 4, 3)).astype("float32")
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(images, training=True) - 1.0))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_weights), model.trainable_weights))
        momentum = {w.path: np.array(optimizer.momentums[optimizer._get_variable_index(w)])
                    for w in model.trainable_weights}
        return {w.path: np.array(w) - before[w.path] for w in model.trainable_weights}, momentum

    (plain, plain_momentum), (scaled, scaled_momentum) = one_step(1.0), one_step(8.0)
    assert set(plain) == {"conv/kernel", "bn/gamma", "bn/beta", "head/kernel", "head/bias"}
    assert np.abs(plain["bn/beta"]).min() > 0
    np.testing.assert_allclose(scaled["bn/beta"], 8.0 * plain["bn/beta"], rtol=1e-5)
    # The momentum buffer holds the scaled step, so later steps carry it too.
    np.testing.assert_allclose(scaled_momentum["bn/beta"], 8.0 * plain_momentum["bn/beta"], rtol=1e-5)
    for path in plain.keys() - {"bn/beta"}:
        np.testing.assert_array_equal(scaled[path], plain[path])


def test_bn_bias_lr_scale_of_one_leaves_the_optimizer_as_built():
    # The fused one-kernel step of each optimizer (training.fused_updates), not wrapped again.
    for name in ("sgd", "adam", "rmsprop"):
        assert build_optimizer(OptimConfig(optimizer=name), 1, 1).update_step.__name__ == "update_step", name
    with pytest.raises(ConfigError, match="bn_bias_lr_scale"):
        OptimConfig(bn_bias_lr_scale=0.0)


def test_batch_norm_offsets_are_found_by_every_name_the_backend_gives_them():
    from types import SimpleNamespace

    from kerascnn.training.norm_parameters import is_norm_offset

    names = {"beta": True, "bn/beta:0": True, "conv1_bn/beta/replica_1:0": True, "bn/gamma:0": False,
             "head/bias:0": False, "beta_net/kernel:0": False, "replica_1:0": False}
    assert {n: is_norm_offset(SimpleNamespace(name=n)) for n in names} == names


def test_freeze_bn_scale_keeps_every_gamma_and_trains_the_rest():
    """build_models with --freeze-bn-scale: gamma gets no slot and no step; beta and the kernels move."""
    import keras

    from kerascnn.training.build import build_models

    optim = OptimConfig(lr=0.1, schedule="constant", freeze_bn_scale=True, bn_bias_lr_scale=4.0)
    network, model, _ = build_models(
        "alexnet_cifar", 10, (16, 16, 3),
        {"batch_norm": True, "width_multiplier": 0.125, "fc_units": 16, "dropout": 0.0},
        optim, steps_per_epoch=1, epochs=1,
    )
    gammas = [w for w in network.weights if w.name == "gamma"]
    assert len(gammas) == 7  # conv1-5, fc6, fc7
    assert not any(g.trainable for g in gammas)
    assert {id(v) for v in model.trainable_variables}.isdisjoint(id(g) for g in gammas)
    before = {w.path: np.array(w) for w in network.weights}
    rng = np.random.default_rng(0)
    model.train_on_batch(rng.normal(size=(8, 16, 16, 3)).astype("float32"),
                         keras.utils.to_categorical(rng.integers(0, 10, 8), 10))
    moved = {w.path for w in network.weights if not np.array_equal(np.array(w), before[w.path])}
    assert not any(path.endswith("/gamma") for path in moved)
    assert {"conv1/kernel", "conv1_bn/beta", "fc6/kernel", "predictions/kernel"} <= moved, sorted(moved)


def test_freeze_bn_scale_is_refused_beside_zero_initialised_residual_scales():
    from kerascnn.config import RunConfig

    with pytest.raises(ConfigError, match="zero_init_residual"):
        RunConfig.from_flags("resnet20", freeze_bn_scale=True, model_options={"zero_init_residual": True})
    with pytest.raises(ConfigError, match="freeze-backbone"):
        RunConfig.from_flags("resnet20", freeze_bn_scale=True, freeze_backbone=2)
    assert RunConfig.from_flags("resnet20", freeze_bn_scale=True).optim.freeze_bn_scale


def test_decay_norm_and_bias_is_refused_where_it_would_do_nothing_or_clash():
    with pytest.raises(ConfigError, match="adamw decays on its own"):
        OptimConfig(optimizer="adamw", decay_norm_and_bias=True)
    with pytest.raises(ConfigError, match="--weight-decay 0"):
        OptimConfig(weight_decay=0.0, decay_norm_and_bias=True)
    assert OptimConfig(decay_norm_and_bias=True).decay_norm_and_bias
