"""Streaming pixel statistics and fit_pca."""

import numpy as np
import tensorflow as tf

from kerascnn.data import fit_pca
from kerascnn.data.statistics import pixel_moments


def _images_with_covariance(cov, mean, n=400, size=8, seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.multivariate_normal(mean, cov, size=n * size * size)
    return pixels.reshape(n, size, size, 3)


def test_fit_pca_recovers_a_known_covariance():
    q, _ = np.linalg.qr(np.array([[1.0, 2.0, 0.0], [0.5, 0.1, 1.0], [1.0, 0.3, 0.2]]))
    eigenvalues = np.array([900.0, 250.0, 40.0])
    cov = q @ np.diag(eigenvalues) @ q.T
    images = _images_with_covariance(cov, mean=[120.0, 110.0, 100.0])
    pca = fit_pca(images)
    np.testing.assert_allclose(pca["eigenvalues"], eigenvalues, rtol=0.02)
    v = np.array(pca["eigenvectors"])
    np.testing.assert_allclose(v.T @ v, np.eye(3), atol=1e-9)  # orthonormal columns
    # Each recovered column is the true eigenvector up to sign.
    np.testing.assert_allclose(np.abs(np.sum(v * q, axis=0)), 1.0, atol=0.01)
    # The eigenvalues come out descending, and reconstruct the covariance.
    assert pca["eigenvalues"] == sorted(pca["eigenvalues"], reverse=True)
    np.testing.assert_allclose(v @ np.diag(pca["eigenvalues"]) @ v.T, cov, rtol=0.03, atol=5.0)


def test_array_and_dataset_give_the_same_result_in_any_batching():
    images = np.random.default_rng(1).integers(0, 256, size=(50, 6, 6, 3)).astype(np.uint8)
    labels = np.zeros(50, np.int64)
    from_array = fit_pca(images, batch_size=7)
    unbatched = fit_pca(tf.data.Dataset.from_tensor_slices((images, labels)))
    batched = fit_pca(tf.data.Dataset.from_tensor_slices(images).batch(16))
    for other in (unbatched, batched):
        np.testing.assert_allclose(other["eigenvalues"], from_array["eigenvalues"], rtol=1e-9)
        np.testing.assert_allclose(other["eigenvectors"], from_array["eigenvectors"], atol=1e-9)


def test_moments_match_numpy_on_the_0_255_scale():
    images = np.random.default_rng(2).integers(0, 256, size=(20, 4, 4, 3)).astype(np.uint8)
    moments = pixel_moments(images, batch_size=3)
    pixels = images.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(moments.mean, pixels.mean(axis=0))
    np.testing.assert_allclose(moments.covariance, np.cov(pixels, rowvar=False, bias=True), rtol=1e-9)
    np.testing.assert_allclose(moments.std, pixels.std(axis=0))
