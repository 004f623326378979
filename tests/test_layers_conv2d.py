"""kerascnn.layers.Conv2D (matrix-product weight gradient on small maps) against Keras' Conv2D."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerascnn.layers import Conv2D, conv2d
from kerascnn.layers.conv2d import weight_gradient
from kerascnn.training.context import precision_policy

PRODUCT_DTYPES = conv2d.SMALL_MAP_DTYPES


@pytest.fixture(autouse=True)
def float32_too(monkeypatch):
    """float32 layers take the small-map gradient too, so it is checked against Keras' to float32 rounding.

    (The product uses it in bfloat16 only: `test_only_bfloat16_takes_it_by_default`.)
    """
    monkeypatch.setattr(conv2d, "SMALL_MAP_DTYPES", PRODUCT_DTYPES + ("float32",))


def pair(input_shape, **kwargs):
    """Keras' layer and kerascnn's, built for `input_shape`, with the same random kernel and bias."""
    layers = (keras.layers.Conv2D(**kwargs), Conv2D(**kwargs))
    for layer in layers:
        layer.build(input_shape)
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=w.shape).astype("float32") for w in layers[0].get_weights()]
    for layer in layers:
        layer.set_weights(weights)
    return layers


def forward_and_gradients(layer, x):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        # A loss whose output gradient differs at every position and channel.
        weights = tf.constant(np.random.default_rng(9).normal(size=y.shape), "float32")
        loss = tf.reduce_sum(tf.cast(y, "float32") * weights)
    return y, tape.gradient(loss, [x] + layer.trainable_variables)


@pytest.mark.parametrize("input_shape, kernel_size", [
    ((3, 4, 4, 5), 3),  # VGG's last stages on CIFAR-10, in small
    ((2, 2, 2, 3), 3),  # a map smaller than the kernel: most taps fall on the padding
    ((2, 3, 5, 4), 5),  # not square, a 5x5 kernel
    ((3, 4, 4, 5), 1),
])
def test_outputs_and_gradients_equal_keras(input_shape, kernel_size):
    reference, layer = pair(input_shape, filters=6, kernel_size=kernel_size, padding="same")
    assert layer.uses_small_map_gradient(input_shape)
    x = np.random.default_rng(1).normal(size=input_shape).astype("float32")
    y_ref, g_ref = forward_and_gradients(reference, x)
    y, g = forward_and_gradients(layer, x)
    np.testing.assert_allclose(y.numpy(), y_ref.numpy(), rtol=1e-5, atol=1e-5)
    for name, got, expected in zip(("x", "kernel", "bias"), g, g_ref):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4, err_msg=name)


def test_weight_gradient_is_tensorflows_filter_gradient():
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(2, 4, 4, 3)), "float32")
    dy = tf.constant(rng.normal(size=(2, 4, 4, 7)), "float32")
    expected = tf.raw_ops.Conv2DBackpropFilter(
        input=x, filter_sizes=[3, 3, 3, 7], out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME")
    got = weight_gradient(x, dy, (3, 3, 3, 7))
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_unknown_batch_size_in_a_traced_training_step():
    reference, layer = pair((None, 2, 2, 4), filters=3, kernel_size=3, padding="same")
    x = np.random.default_rng(3).normal(size=(5, 2, 2, 4)).astype("float32")

    @tf.function(input_signature=[tf.TensorSpec((None, 2, 2, 4))])
    def kernel_gradient(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x) ** 2)
        return tape.gradient(loss, layer.kernel)

    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(reference(x) ** 2)
    np.testing.assert_allclose(kernel_gradient(x).numpy(), tape.gradient(loss, reference.kernel).numpy(),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("input_shape, kwargs", [
    ((2, 8, 8, 3), dict(kernel_size=3, padding="same")),  # 64 pixels (> SMALL_MAP_PIXELS): as fast in TensorFlow's
    ((2, 4, 4, 3), dict(kernel_size=3, padding="valid")),
    ((2, 4, 4, 3), dict(kernel_size=3, padding="same", strides=2)),
    ((2, 4, 4, 3), dict(kernel_size=3, padding="same", dilation_rate=2)),
    ((2, 4, 4, 4), dict(kernel_size=3, padding="same", groups=2)),
    ((2, 4, 4, 3), dict(kernel_size=2, padding="same")),  # even: "same" pads unevenly
    ((2, 4, 4, 3), dict(kernel_size=(1, 3), padding="same")),
    ((2, None, None, 3), dict(kernel_size=3, padding="same")),
])
def test_other_convolutions_are_keras_own(input_shape, kwargs):
    _, layer = pair(tuple(4 if size is None else size for size in input_shape), filters=4, **kwargs)
    assert not layer.uses_small_map_gradient(input_shape)


def test_mixed_bfloat16_gradients_close_to_float32():
    x = np.random.default_rng(4).normal(size=(4, 4, 4, 8)).astype("float32")
    reference, _ = pair(x.shape, filters=8, kernel_size=3, padding="same")
    _, g_ref = forward_and_gradients(reference, x)
    with precision_policy("mixed_bfloat16"):
        layer = Conv2D(filters=8, kernel_size=3, padding="same")
        layer.build(x.shape)
    layer.set_weights(reference.get_weights())
    assert layer.uses_small_map_gradient(x.shape)
    y, g = forward_and_gradients(layer, x)
    assert y.dtype == tf.bfloat16 and g[1].dtype == tf.float32  # bfloat16 compute, float32 kernel
    scale = np.abs(g_ref[1].numpy()).max()
    np.testing.assert_allclose(g[1].numpy() / scale, g_ref[1].numpy() / scale, atol=0.03)


def test_saved_and_loaded_as_kerascnn_conv2d(tmp_path):
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, Conv2D(2, 3, padding="same", name="conv")(inputs))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.get_layer("conv")) is Conv2D
    x = np.ones((1, 4, 4, 3), "float32")
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-6)


@pytest.mark.parametrize("size, small", [(4, True), (8, False)])
def test_the_kernel_gradient_of_small_maps_avoids_tensorflows_filter_kernel(size, small):
    layer = Conv2D(filters=3, kernel_size=3, padding="same")
    layer.build((2, size, size, 4))

    @tf.function
    def kernel_gradient(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x) ** 2)
        return tape.gradient(loss, layer.kernel)

    graph = kernel_gradient.get_concrete_function(tf.TensorSpec((2, size, size, 4))).graph
    op_types = {op.type for op in graph.get_operations()}
    for function in graph._functions.values():  # the gradient's own function body, where there is one
        op_types |= {node.op for node in function.definition.node_def}
    assert ("Conv2DBackpropFilter" in op_types) is not small
    assert ("MatMul" in op_types) is small


def test_only_bfloat16_takes_it_by_default(monkeypatch):
    monkeypatch.setattr(conv2d, "SMALL_MAP_DTYPES", PRODUCT_DTYPES)
    assert PRODUCT_DTYPES == ("bfloat16",)
    with precision_policy("mixed_bfloat16"):
        bfloat16 = Conv2D(filters=4, kernel_size=3, padding="same")
    float32 = Conv2D(filters=4, kernel_size=3, padding="same")
    assert bfloat16.uses_small_map_gradient((2, 4, 4, 3))
    assert not float32.uses_small_map_gradient((2, 4, 4, 3))
