"""Pixel statistics of a training split, in one streaming pass.

Normalisation needs the per-channel mean and standard deviation; AlexNet's
PCA colour jitter needs the eigen-decomposition of the 3x3 RGB covariance.
Both come from the same running sums, so a run reads its training images
once for both, and never holds more than one batch of them.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class PixelMoments:
    """First and second moments of RGB pixels.

    Attributes:
        count: number of pixels.
        mean: per-channel mean, shape (3,).
        covariance: 3x3 population covariance, `S2/n - mean mean^T`.
    """

    count: int
    mean: np.ndarray
    covariance: np.ndarray

    @property
    def std(self):
        return np.sqrt(np.maximum(np.diag(self.covariance), 1e-12))


def _batches_of(data, batch_size):
    """Yield image arrays [N, H, W, 3] from an array or a tf.data dataset.

    A dataset may yield images or (image, label) pairs, batched or not.
    """
    if isinstance(data, np.ndarray) or not hasattr(data, "as_numpy_iterator"):
        array = np.asarray(data)
        if array.ndim == 3:
            array = array[None]
        for start in range(0, len(array), batch_size):
            yield array[start : start + batch_size]
        return
    spec = data.element_spec
    image_spec = spec[0] if isinstance(spec, tuple) else spec
    if image_spec.shape.rank == 3:
        data = data.batch(batch_size)
    for element in data.as_numpy_iterator():
        yield element[0] if isinstance(element, tuple) else element


def pixel_moments(data, batch_size=1024):
    """Mean and covariance of the RGB pixels of `data`, one streaming pass.

    Accumulates, in float64, the pixel count n, S1 = sum x and
    S2 = sum x x^T over all pixels x (RGB vectors); then
    mean = S1/n and covariance = S2/n - mean mean^T. The pixels are taken on
    the scale they come in (0-255 for uint8 images).

    Args:
        data: a numpy array [N, H, W, 3] (or one image), or a tf.data
            dataset of images or (image, label) pairs, batched or not.
        batch_size: images per step when `data` is not already batched.
    """
    s1 = np.zeros(3)
    s2 = np.zeros((3, 3))
    count = 0
    for images in _batches_of(data, batch_size):
        if images.shape[-1] != 3:
            raise ValueError(f"expected RGB images with 3 channels, got shape {images.shape}")
        pixels = images.reshape(-1, 3).astype(np.float64)
        s1 += pixels.sum(axis=0)
        s2 += pixels.T @ pixels
        count += pixels.shape[0]
    if count == 0:
        raise ValueError("no images to compute pixel statistics from")
    mean = s1 / count
    covariance = s2 / count - np.outer(mean, mean)
    return PixelMoments(count, mean, (covariance + covariance.T) / 2)


def channel_stats(data, batch_size=1024):
    """Per-channel (mean, std) tuples of `data` on its own scale (0-255 for uint8)."""
    moments = pixel_moments(data, batch_size)
    return tuple(float(m) for m in moments.mean), tuple(float(s) for s in moments.std)


def pca_of(moments):
    """Eigen-decomposition of a `PixelMoments` covariance, as `fit_pca` returns it."""
    eigenvalues, eigenvectors = np.linalg.eigh(moments.covariance)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues = np.maximum(eigenvalues[order], 0.0)
    eigenvectors = eigenvectors[:, order]
    # eigh's signs are arbitrary; fix them (largest entry of each column
    # positive) so the same data always gives the same stored vectors.
    signs = np.sign(eigenvectors[np.abs(eigenvectors).argmax(axis=0), range(3)])
    eigenvectors = eigenvectors * np.where(signs == 0, 1.0, signs)
    return {"eigenvalues": eigenvalues.tolist(), "eigenvectors": eigenvectors.tolist()}


def fit_pca(data, batch_size=1024):
    """Principal components of the RGB pixels, for `PCAColorJitter`.

    Krizhevsky et al. 2012, section 4.1: "PCA on the set of RGB pixel values
    throughout the ImageNet training set". One streaming pass accumulates the
    3x3 covariance (see `pixel_moments`), which is then eigen-decomposed.

    The statistics are on the scale of `data` as given: uint8 images (or the
    uint8 training pipeline of a run) give 0-255, the scale on which
    kerascnn's training pipeline applies the jitter, before normalisation.

    Args:
        data: numpy array [N, H, W, 3] or a tf.data dataset of images or
            (image, label) pairs, batched or not.

    Returns:
        {"eigenvalues": [3 floats, descending], "eigenvectors": 3x3 nested
        list with one unit eigenvector per column}, so that
        `PCAColorJitter(**fit_pca(x), sigma=0.1)` builds the layer.
    """
    return pca_of(pixel_moments(data, batch_size))
