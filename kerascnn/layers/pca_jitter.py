"""AlexNet's PCA colour jitter ("fancy PCA" lighting augmentation).

Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep
Convolutional Neural Networks", NIPS 2012, section 4.1.
"""

import keras
import numpy as np
from keras import ops

SCALES = ("eigenvalue", "stddev")


@keras.saving.register_keras_serializable(package="kerascnn")
class PCAColorJitter(keras.layers.Layer):
    """Adds one random colour shift along the RGB principal components per image.

    The 3x3 covariance of the training pixels has eigenvalues `lambda_i` and
    unit eigenvectors `p_i` (the columns of `V`). For every image a fresh
    `alpha ~ N(0, sigma^2 I_3)` is drawn and the same vector

        delta = V @ (alpha * c),   c = lambda          (scale="eigenvalue")
                                   c = sqrt(lambda)    (scale="stddev")

    is added to every pixel of that image; the result is clipped to
    `value_range`. The shifts therefore have covariance
    `V diag(sigma^2 c^2) V^T`.

    `scale="eigenvalue"` is the paper's formula, `[p1 p2 p3][a1 l1, a2 l2, a3 l3]^T`.
    It depends on the pixel scale: `lambda` is a variance, so the shift grows
    with the square of the scale. With pixels in [0, 1] (CIFAR-10's largest
    eigenvalue is about 0.17) the largest shift has a standard deviation of
    about 0.017, some 4 intensity levels; with pixels in 0-255 the same
    formula gives about 1100 levels and saturates every image.
    `scale="stddev"` uses `sqrt(lambda)`, a standard deviation, so the shift
    scales with the pixels and gives the same relative jitter at any scale
    (about 10 levels of 255 on CIFAR-10 at sigma 0.1); it is the form the
    widely used ImageNet recipes (fb.resnet.torch's "Lighting") apply, and
    the one kerascnn's `alexnet` augmentation preset uses on 0-255 pixels.

    `kerascnn.data.fit_pca` computes `eigenvalues` and `eigenvectors` on the
    scale of the images it is given, which must be the scale this layer sees.

    Args:
        eigenvalues: the 3 eigenvalues of the pixel covariance, descending.
        eigenvectors: 3x3 matrix whose columns are the unit eigenvectors, in
            the order of `eigenvalues`.
        sigma: standard deviation of `alpha` (0.1 in the paper).
        scale: "eigenvalue" or "stddev", see above.
        value_range: (low, high) the output is clipped to; None disables
            clipping.
        seed: seed of the layer's `keras.random.SeedGenerator`.

    Input: float images `[batch, height, width, 3]` or one image
    `[height, width, 3]`, channels last, any float dtype. The identity unless
    called with `training=True`.
    """

    def __init__(
        self,
        eigenvalues,
        eigenvectors,
        sigma=0.1,
        scale="eigenvalue",
        value_range=(0.0, 255.0),
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        eigenvalues = np.asarray(eigenvalues, dtype=np.float64).reshape(-1)
        eigenvectors = np.asarray(eigenvectors, dtype=np.float64)
        if eigenvalues.shape != (3,) or np.any(eigenvalues < 0) or not np.all(np.isfinite(eigenvalues)):
            raise ValueError(
                f"`eigenvalues` must be 3 finite numbers >= 0. Received: eigenvalues={eigenvalues.tolist()}"
            )
        if eigenvectors.shape != (3, 3) or not np.all(np.isfinite(eigenvectors)):
            raise ValueError(
                f"`eigenvectors` must be a finite 3x3 matrix (one eigenvector per column). "
                f"Received: eigenvectors={eigenvectors.tolist()}"
            )
        if scale not in SCALES:
            raise ValueError(f"`scale` must be one of {SCALES}. Received: scale={scale}")
        if not sigma >= 0:
            raise ValueError(f"`sigma` must be >= 0. Received: sigma={sigma}")
        if value_range is not None:
            value_range = tuple(float(v) for v in value_range)
            if len(value_range) != 2 or value_range[0] >= value_range[1]:
                raise ValueError(f"`value_range` must be (low, high) with low < high. Received: value_range={value_range}")
        self.eigenvalues = [float(v) for v in eigenvalues]
        self.eigenvectors = eigenvectors.tolist()
        self.sigma = float(sigma)
        self.scale = scale
        self.value_range = value_range
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        coefficients = eigenvalues if scale == "eigenvalue" else np.sqrt(eigenvalues)
        # delta = V @ (alpha * c) for a batch of alphas [B, 3] is alpha @ (diag(c) V^T).
        self._projection = (coefficients[:, None] * eigenvectors.T).astype(np.float32)
        # Keep the caller's float dtype (uint8 pipelines feed float32, a
        # mixed-precision model float16) instead of casting to the layer's.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True  # numpy batches, as Keras' own preprocessing layers

    def shift(self, images, alpha):
        """Add `V @ (alpha_i * c)` to every pixel of image i and clip.

        `alpha` is `[batch, 3]`, drawn from N(0, sigma^2). `call` draws it
        from the layer's SeedGenerator; the training pipeline draws it from
        its per-batch stateless seed instead, so that its maps can run in
        parallel and stay reproducible.
        """
        delta = ops.matmul(ops.cast(alpha, "float32"), ops.convert_to_tensor(self._projection))
        out = images + ops.cast(delta, images.dtype)[:, None, None, :]
        if self.value_range is not None:
            out = ops.clip(out, self.value_range[0], self.value_range[1])
        return out

    def call(self, inputs, training=False):
        inputs = ops.convert_to_tensor(inputs)
        if not training:
            return inputs
        single = len(inputs.shape) == 3
        images = inputs[None] if single else inputs
        alpha = keras.random.normal((ops.shape(images)[0], 3), stddev=self.sigma, seed=self.seed_generator)
        out = self.shift(images, alpha)
        return out[0] if single else out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "eigenvalues": self.eigenvalues,
                "eigenvectors": self.eigenvectors,
                "sigma": self.sigma,
                "scale": self.scale,
                "value_range": None if self.value_range is None else list(self.value_range),
                "seed": self.seed,
            }
        )
        return config
