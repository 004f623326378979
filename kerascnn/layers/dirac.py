"""DiracStart: a convolution kernel that starts as the identity on its first filters (airbench's start)."""

import math

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="kerascnn")
class DiracStart(keras.initializers.Initializer):
    """PyTorch's default convolution start, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), with the identity on the first c_in filters.

    For a kernel [k_h, k_w, c_in, c_out], filter j < min(c_in, c_out) is zero but
    for w[k_h // 2, k_w // 2, j, j] = 1 (`torch.nn.init.dirac_` on airbench's
    `w[:c_in]`): the convolution starts by copying its input into its first
    c_in channels. The uniform bound is kaiming_uniform's with a = sqrt(5),
    sqrt(3) * sqrt(2 / (1 + 5)) / sqrt(fan_in) = 1 / sqrt(fan_in).
    """

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        k_h, k_w, c_in, c_out = shape
        bound = 1.0 / math.sqrt(k_h * k_w * c_in)
        draw = keras.initializers.RandomUniform(-bound, bound, seed=self.seed)(shape, dtype=dtype)
        n = min(c_in, c_out)
        keep = np.ones(shape, "float32")
        keep[..., :n] = 0.0
        identity = np.zeros(shape, "float32")
        identity[k_h // 2, k_w // 2, np.arange(n), np.arange(n)] = 1.0
        return draw * keras.ops.cast(keep, draw.dtype) + keras.ops.cast(identity, draw.dtype)

    def get_config(self):
        return {"seed": self.seed}
