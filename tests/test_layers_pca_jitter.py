"""PCAColorJitter: AlexNet's colour shift, checked against its defining formula."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerascnn.data import fit_pca
from kerascnn.layers import PCAColorJitter

# An orthonormal basis that is not the identity, and distinct eigenvalues.
_Q, _ = np.linalg.qr(np.array([[2.0, 1.0, 0.5], [0.3, 1.5, 1.0], [0.2, 0.4, 1.2]]))
EIGENVECTORS = _Q
EIGENVALUES = np.array([3.0, 2.0, 1.0])


def _layer(**kw):
    kw.setdefault("sigma", 0.1)
    kw.setdefault("seed", 0)
    return PCAColorJitter(EIGENVALUES, EIGENVECTORS, **kw)


def _images(n=4, h=5, w=6, value=100.0):
    rng = np.random.default_rng(0)
    return (value + rng.uniform(-20, 20, size=(n, h, w, 3))).astype(np.float32)


def test_identity_at_inference():
    x = _images()
    layer = _layer()
    np.testing.assert_array_equal(layer(x).numpy(), x)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)


def test_every_pixel_of_an_image_moves_by_the_same_vector():
    x = _images()
    out = _layer(value_range=None)(x, training=True).numpy()
    delta = out - x
    per_image = delta[:, :1, :1, :]
    np.testing.assert_allclose(delta, np.broadcast_to(per_image, delta.shape), atol=1e-4)
    # ... and different images get different shifts.
    assert not np.allclose(per_image[0], per_image[1])


@pytest.mark.parametrize("scale, power", [("eigenvalue", 2.0), ("stddev", 1.0)])
def test_shift_covariance_matches_the_formula(scale, power):
    sigma = 0.5
    x = np.zeros((20000, 1, 1, 3), np.float32)
    layer = _layer(sigma=sigma, scale=scale, value_range=None)
    delta = layer(x, training=True).numpy().reshape(-1, 3).astype(np.float64)
    # The shifts lie in the span of the eigenvectors: coordinates in that
    # basis reconstruct them exactly.
    coords = delta @ EIGENVECTORS
    np.testing.assert_allclose(coords @ EIGENVECTORS.T, delta, atol=1e-4)
    # Covariance V diag(sigma^2 lambda^2) V^T ("eigenvalue"), or with lambda ("stddev").
    expected = EIGENVECTORS @ np.diag(sigma**2 * EIGENVALUES**power) @ EIGENVECTORS.T
    empirical = np.cov(delta, rowvar=False, bias=True)
    assert np.linalg.norm(empirical - expected) / np.linalg.norm(expected) < 0.05
    # Per component too: the variance along each eigenvector within 5%.
    variances = np.var(coords, axis=0)
    np.testing.assert_allclose(variances, sigma**2 * EIGENVALUES**power, rtol=0.05)
    np.testing.assert_allclose(delta.mean(axis=0), 0.0, atol=0.05 * np.sqrt(expected.max()))


def test_same_seed_same_output_and_new_draws_each_call():
    x = _images()
    a, b = _layer(seed=7), _layer(seed=7)
    first = a(x, training=True).numpy()
    np.testing.assert_array_equal(first, b(x, training=True).numpy())
    assert not np.array_equal(first, a(x, training=True).numpy())
    assert not np.array_equal(first, _layer(seed=8)(x, training=True).numpy())


def test_output_is_clipped_to_the_value_range():
    x = np.full((8, 2, 2, 3), 250.0, np.float32)
    out = _layer(sigma=50.0, value_range=(0, 255))(x, training=True).numpy()
    assert out.max() <= 255.0 and out.min() >= 0.0
    assert np.any(out == 255.0)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_any_float_dtype(dtype):
    x = tf.cast(_images(), dtype)
    out = _layer()(x, training=True)
    assert out.dtype == x.dtype and out.shape == x.shape


def test_works_in_tf_data_on_whole_batches_and_on_one_image():
    layer = _layer()
    ds = tf.data.Dataset.from_tensor_slices(_images(n=8)).batch(4).map(lambda b: layer(b, training=True))
    batches = list(ds)
    assert [b.shape[0] for b in batches] == [4, 4]
    single = layer(_images(n=1)[0], training=True)
    assert single.shape == (5, 6, 3)


def test_keras_round_trip_inside_a_model(tmp_path):
    inputs = keras.Input((5, 6, 3))
    model = keras.Model(inputs, _layer(sigma=0.2, scale="stddev", seed=3)(inputs))
    path = tmp_path / "jitter.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    layer = loaded.layers[-1]
    assert isinstance(layer, PCAColorJitter)
    assert layer.get_config() == model.layers[-1].get_config()
    np.testing.assert_allclose(layer.eigenvectors, EIGENVECTORS)
    x = _images()
    np.testing.assert_array_equal(loaded(x).numpy(), x)  # identity at inference


def test_builds_from_fit_pca_output():
    layer = PCAColorJitter(**fit_pca(_images(n=16)), sigma=0.1, scale="eigenvalue", seed=0)
    assert layer(_images(), training=True).shape == (4, 5, 6, 3)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"eigenvalues": [1.0, 2.0]}, "eigenvalues"),
        ({"eigenvalues": [1.0, -1.0, 0.5]}, "eigenvalues"),
        ({"eigenvectors": np.eye(2)}, "eigenvectors"),
        ({"scale": "variance"}, "scale"),
        ({"sigma": -0.1}, "sigma"),
        ({"value_range": (1, 0)}, "value_range"),
    ],
)
def test_bad_arguments_are_rejected_with_the_value(kwargs, word):
    args = {"eigenvalues": EIGENVALUES, "eigenvectors": EIGENVECTORS, **kwargs}
    with pytest.raises(ValueError, match=f"Received: {word}="):
        PCAColorJitter(**args)
