"""kerascnn.layers.BatchNormalization (TensorFlow's fused kernel) against Keras' BatchNormalization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerascnn.layers import BatchNormalization
from kerascnn.training.context import precision_policy

SHAPE = (4, 3, 5, 6)  # N, H, W, C: n = 60 values per channel


def pair(shape=SHAPE, seed=0, **kwargs):
    """Keras' layer and kerascnn's, built for `shape`, with the same non-trivial weights and statistics."""
    rng = np.random.default_rng(seed)
    layers = (keras.layers.BatchNormalization(**kwargs), BatchNormalization(**kwargs))
    for layer in layers:
        layer.build(shape)
    channels = shape[layers[0].axis]
    weights = [w for w in (
        rng.uniform(0.5, 2.0, channels) if layers[0].scale else None,  # gamma
        rng.normal(0, 1, channels) if layers[0].center else None,  # beta
        rng.normal(0, 1, channels),  # moving mean
        rng.uniform(0.5, 2.0, channels),  # moving variance
    ) if w is not None]
    for layer in layers:
        # (renorm's extra statistics after these: left at their initial values, equal in both)
        layer.set_weights([w.astype("float32") for w in weights] + layer.get_weights()[len(weights):])
    return layers


def inputs(shape=SHAPE, seed=1):
    # Per-channel offsets and scales, so that the statistics differ by channel.
    rng = np.random.default_rng(seed)
    return (rng.normal(3, 2, shape) * rng.uniform(0.5, 4, shape[-1])).astype("float32")


def forward_and_gradients(layer, x, training):
    x = tf.constant(x)
    weights = tf.constant(np.random.default_rng(9).normal(size=x.shape), "float32")
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        loss = tf.reduce_sum(tf.cast(y, "float32") * weights)  # a loss whose gradient is not trivial
    grads = tape.gradient(loss, [x] + layer.trainable_variables)
    return y, grads


@pytest.mark.parametrize("training", [True, False])
def test_outputs_and_gradients_equal_keras(training):
    reference, fused = pair(momentum=0.9, epsilon=1e-5)
    x = inputs()
    assert fused._fusable(tf.constant(x), None)
    y_ref, g_ref = forward_and_gradients(reference, x, training)
    y, g = forward_and_gradients(fused, x, training)
    np.testing.assert_allclose(y.numpy(), y_ref.numpy(), rtol=1e-5, atol=1e-5)
    for name, got, expected in zip(("x", "gamma", "beta"), g, g_ref):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4, err_msg=name)


def test_moving_statistics_follow_keras_biased_variance():
    reference, fused = pair(momentum=0.8)
    x = inputs()
    before_mean = fused.moving_mean.numpy().copy()
    before_var = fused.moving_variance.numpy().copy()
    for layer in (reference, fused):
        layer(x, training=True)
    np.testing.assert_allclose(fused.moving_mean.numpy(), reference.moving_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused.moving_variance.numpy(), reference.moving_variance.numpy(), rtol=1e-5)
    # The update itself: momentum * old + (1 - momentum) * the biased batch variance (not the op's n/(n-1) one).
    batch_var = x.reshape(-1, SHAPE[-1]).astype(np.float64).var(axis=0)  # numpy's default ddof=0: biased
    np.testing.assert_allclose(fused.moving_variance.numpy(), 0.8 * before_var + 0.2 * batch_var, rtol=1e-5)
    np.testing.assert_allclose(fused.moving_mean.numpy(),
                               0.8 * before_mean + 0.2 * x.reshape(-1, SHAPE[-1]).mean(axis=0), rtol=1e-5)


def test_a_frozen_layer_normalises_with_its_moving_statistics_and_keeps_them():
    reference, fused = pair()
    for layer in (reference, fused):
        layer.trainable = False
    x = inputs()
    before = fused.moving_variance.numpy().copy()
    y_ref = reference(x, training=True)
    y = fused(x, training=True)
    np.testing.assert_allclose(y.numpy(), y_ref.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(fused.moving_variance.numpy(), before)


@pytest.mark.parametrize("options", [{"center": False}, {"scale": False}, {"center": False, "scale": False}])
def test_without_gamma_or_beta(options):
    reference, fused = pair(**options)
    x = inputs()
    for training in (True, False):
        np.testing.assert_allclose(fused(x, training=training).numpy(), reference(x, training=training).numpy(),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape, options", [
    ((8, 6), {}),  # after a Dense layer: 2-D
    (SHAPE, {"axis": 1}),  # channels-first
    (SHAPE, {"renorm": True}),
    ((2, 3, 4, 5, 6), {}),  # 5-D
])
def test_other_cases_are_keras_own(shape, options):
    reference, fused = pair(shape, **options)
    x = inputs(shape)
    assert not fused._fusable(tf.constant(x), None)
    for training in (True, False):
        np.testing.assert_allclose(fused(x, training=training).numpy(), reference(x, training=training).numpy(),
                                   rtol=1e-5, atol=1e-5)


def test_synchronized_is_keras_own():
    fused = BatchNormalization(synchronized=True)
    assert not fused._fusable(tf.zeros(SHAPE), None)


def test_mixed_bfloat16():
    with precision_policy("mixed_bfloat16"):
        reference, fused = pair()
    x = inputs()
    for training in (True, False):
        y_ref, g_ref = forward_and_gradients(reference, tf.cast(x, "bfloat16").numpy(), training)
        y, g = forward_and_gradients(fused, tf.cast(x, "bfloat16").numpy(), training)
        assert y.dtype == y_ref.dtype == tf.bfloat16
        # bfloat16 has 8 significant bits: outputs agree to its rounding (~0.4% of |y| <= ~4).
        np.testing.assert_allclose(tf.cast(y, "float32").numpy(), tf.cast(y_ref, "float32").numpy(), atol=0.04)
        for name, got, expected in zip(("x", "gamma", "beta"), g, g_ref):
            got, expected = tf.cast(got, "float32").numpy(), tf.cast(expected, "float32").numpy()
            np.testing.assert_allclose(got, expected, atol=0.02 * np.abs(expected).max(), err_msg=name)
    assert fused.moving_variance.dtype == "float32"
    np.testing.assert_allclose(fused.moving_variance.numpy(), reference.moving_variance.numpy(), rtol=1e-3)
    np.testing.assert_allclose(fused.moving_mean.numpy(), reference.moving_mean.numpy(), rtol=1e-3, atol=1e-3)


def tiny_model(bn_class):
    keras.utils.set_random_seed(0)
    x_in = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(x_in)
    x = bn_class(momentum=0.9, epsilon=1e-5, name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(x_in, keras.layers.Dense(2, dtype="float32")(x))


def test_a_fit_step_matches_keras_and_the_model_saves_and_reloads(tmp_path):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(8, 6, 6, 3)).astype("float32"), rng.normal(size=(8, 2)).astype("float32")
    models = [tiny_model(keras.layers.BatchNormalization), tiny_model(BatchNormalization)]
    models[1].set_weights(models[0].get_weights())
    for model in models:
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "mse", jit_compile=False)
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    for ref, got in zip(models[0].weights, models[1].weights):
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-4, atol=1e-5, err_msg=ref.path)

    path = tmp_path / "model.keras"
    models[1].save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.get_layer("bn")) is BatchNormalization
    np.testing.assert_array_equal(loaded.predict_on_batch(x), models[1].predict_on_batch(x))


def test_weight_files_are_interchangeable_with_keras_layer(tmp_path):
    # The same class name as Keras': .weights.h5 keys (snake-case class names) match both ways.
    keras_model, fused_model = tiny_model(keras.layers.BatchNormalization), tiny_model(BatchNormalization)
    keras_model.get_layer("bn").moving_mean.assign(np.arange(4, dtype="float32"))
    keras_model.save_weights(tmp_path / "keras.weights.h5")
    fused_model.load_weights(tmp_path / "keras.weights.h5")
    np.testing.assert_array_equal(fused_model.get_layer("bn").moving_mean.numpy(), np.arange(4))


def test_mixed_bfloat16_model_saves_and_reloads(tmp_path):
    with precision_policy("mixed_bfloat16"):
        model = tiny_model(BatchNormalization)
    x = np.random.default_rng(4).normal(size=(2, 6, 6, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.get_layer("bn").compute_dtype == "bfloat16"
    np.testing.assert_array_equal(loaded.predict_on_batch(x), model.predict_on_batch(x))
