"""kerascnn.layers.GELU: Keras' exact GELU, with one fused loop each way in training on the CPU."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerascnn.layers import GELU
from kerascnn.layers import gelu as gelu_module


def exact(x):
    x = np.asarray(x, np.float64)
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def exact_gradient(x):
    x = np.asarray(x, np.float64)
    cdf = 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    return cdf + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def value_and_gradient(layer, x, training):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        total = tf.reduce_sum(tf.cast(y, tf.float32))  # dL/dy = 1: the gradient is dy/dx itself
    return y, tape.gradient(total, x)


@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-6), ("bfloat16", 1e-2)])
def test_training_and_inference_compute_the_exact_gelu_and_its_gradient(dtype, tolerance):
    x = np.linspace(-6, 6, 2 * 5 * 5 * 4, dtype="float32").reshape(2, 5, 5, 4)
    x_in = tf.cast(x, dtype).numpy()
    reference = exact(x_in.astype("float32"))
    layer = GELU(dtype=dtype)
    trained, trained_grad = value_and_gradient(layer, x_in, training=True)
    inferred, inferred_grad = value_and_gradient(layer, x_in, training=False)
    assert trained.dtype == inferred.dtype == tf.as_dtype(dtype)
    for y in (trained, inferred):
        np.testing.assert_allclose(tf.cast(y, tf.float32).numpy(), reference, atol=tolerance * 8, rtol=tolerance)
    np.testing.assert_allclose(tf.cast(trained_grad, tf.float32).numpy(), exact_gradient(x_in.astype("float32")),
                               atol=tolerance, rtol=tolerance)
    np.testing.assert_allclose(tf.cast(trained_grad, tf.float32).numpy(), tf.cast(inferred_grad, tf.float32).numpy(),
                               atol=tolerance, rtol=tolerance)


def test_the_fused_path_is_taken_in_training_only(monkeypatch):
    calls = []
    fused = gelu_module._fused_functions()
    monkeypatch.setattr(gelu_module, "_fused_functions", lambda: lambda x: calls.append(1) or fused(x))
    layer = GELU()
    x = tf.ones((1, 2, 2, 3))
    layer(x, training=False)
    layer(x)
    assert calls == []
    layer(x, training=True)
    assert calls == [1]


def test_a_model_with_it_saves_and_reloads(tmp_path):
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, GELU(name="act")(keras.layers.Conv2D(2, 1)(inputs)))
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(reloaded.get_layer("act"), GELU)
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(reloaded(x).numpy(), model(x).numpy(), atol=1e-6)
