import keras
import numpy as np
import pytest
import tensorflow as tf

from kerascnn.layers import LocalResponseNormalization


def numpy_lrn(a, size=5, alpha=1e-4, beta=0.75, k=2.0):
    """The paper's formula, written out channel by channel."""
    n_channels = a.shape[-1]
    out = np.empty_like(a, dtype=np.float64)
    for c in range(n_channels):
        lo, hi = max(0, c - size // 2), min(n_channels - 1, c + size // 2)
        s = np.sum(a[..., lo : hi + 1].astype(np.float64) ** 2, axis=-1)
        out[..., c] = a[..., c] / (k + alpha * s) ** beta
    return out


@pytest.mark.parametrize("size", [1, 3, 4, 5, 6])
def test_matches_the_formula_including_edge_channels(size):
    # Large activations so that the alpha term matters (with ReLU outputs ~100 it does).
    a = np.random.default_rng(size).uniform(0, 200, (2, 3, 3, 7)).astype(np.float32)
    got = LocalResponseNormalization(size=size)(a).numpy()
    np.testing.assert_allclose(got, numpy_lrn(a, size=size), rtol=1e-5)
    # Other constants too (TensorFlow's and the paper's names differ).
    got = LocalResponseNormalization(size=size, alpha=1e-3, beta=0.5, k=1.0)(a).numpy()
    np.testing.assert_allclose(got, numpy_lrn(a, size, 1e-3, 0.5, 1.0), rtol=1e-5)


def test_groups_normalise_each_group_alone_as_each_gpu_of_the_paper():
    # 2 groups of 6: the window of channel 5 stops at channel 5, that of 6 starts at 6.
    a = np.random.default_rng(7).uniform(0, 200, (2, 3, 3, 12)).astype(np.float32)
    got = LocalResponseNormalization(groups=2)(a).numpy()
    expected = np.concatenate([numpy_lrn(a[..., :6]), numpy_lrn(a[..., 6:])], axis=-1)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # ...which differs from one window over all 12 channels exactly at the boundary.
    whole = numpy_lrn(a)
    differs = ~np.isclose(got, whole, rtol=1e-6).all(axis=(0, 1, 2))
    assert list(np.flatnonzero(differs)) == [4, 5, 6, 7]
    with pytest.raises(ValueError, match="Received: groups=5"):
        LocalResponseNormalization(groups=5)(a)


def test_gradient_matches_finite_differences():
    a = tf.constant(np.random.default_rng(0).uniform(0, 100, (1, 1, 1, 6)), tf.float64)
    layer = LocalResponseNormalization(alpha=1e-3)
    with tf.GradientTape() as tape:
        tape.watch(a)
        y = tf.reduce_sum(tf.cast(layer(tf.cast(a, tf.float32)), tf.float64) * tf.range(1, 7, dtype=tf.float64))
    grad = tape.gradient(y, a).numpy()
    eps = 1e-3
    weights = np.arange(1, 7)
    numeric = np.zeros(6)
    for i in range(6):
        up, down = a.numpy().copy(), a.numpy().copy()
        up[..., i] += eps
        down[..., i] -= eps
        numeric[i] = (np.sum(numpy_lrn(up, alpha=1e-3) * weights) - np.sum(numpy_lrn(down, alpha=1e-3) * weights)) / (2 * eps)
    np.testing.assert_allclose(grad.ravel(), numeric, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_inputs_keep_their_dtype_without_overflow(dtype):
    a = np.full((1, 2, 2, 5), 300.0, np.float32)  # 300^2 * 5 overflows float16 if squared in it
    # As inside a mixed-precision model: the layer computes in the low precision.
    y = LocalResponseNormalization(dtype=f"mixed_{dtype}")(tf.constant(a, dtype))
    assert y.dtype == dtype
    np.testing.assert_allclose(tf.cast(y, tf.float32).numpy(), numpy_lrn(a), rtol=2e-2)


def test_keras_round_trip(tmp_path):
    inputs = keras.Input((4, 4, 6))
    lrn = LocalResponseNormalization(size=3, alpha=2e-4, beta=0.6, k=1.5, groups=2, name="norm1")
    model = keras.Model(inputs, lrn(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    layer = loaded.get_layer("norm1")
    assert (layer.size, layer.alpha, layer.beta, layer.k, layer.groups) == (3, 2e-4, 0.6, 1.5, 2)
    a = np.random.default_rng(1).uniform(0, 50, (2, 4, 4, 6)).astype(np.float32)
    np.testing.assert_allclose(loaded(a).numpy(), model(a).numpy())


@pytest.mark.parametrize(
    "kwargs", [{"size": 0}, {"size": 2.5}, {"alpha": -1.0}, {"beta": -0.1}, {"groups": 0}, {"groups": 1.5}]
)
def test_bad_arguments_are_rejected_with_the_received_value(kwargs):
    with pytest.raises(ValueError, match="Received"):
        LocalResponseNormalization(**kwargs)
