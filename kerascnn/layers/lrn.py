"""Local Response Normalization (Krizhevsky, Sutskever & Hinton 2012, section 3.3)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerascnn")
class LocalResponseNormalization(keras.layers.Layer):
    """Local Response Normalization across channels (channels_last).

    Krizhevsky et al. 2012, "ImageNet Classification with Deep Convolutional
    Neural Networks", section 3.3:

        b[c] = a[c] / (k + alpha * sum_{c'=max(0, c - n//2)}^{min(N-1, c + n//2)} a[c']^2) ** beta

    with the paper's constants n=5, k=2, alpha=1e-4, beta=0.75. The window
    holds `2 * (n // 2) + 1` channels centred on `c` (5 for n=5; an even n=4
    also sums 5), clipped at the first and last channel.

    With `groups=G` the N channels are G consecutive groups of N/G (the
    paper's two GPUs: 48 + 48 kernel maps after conv1, 128 + 128 after
    conv2) and the window is clipped at the edges of the group of `c`:

        g = c // (N/G),  lo = max(g * N/G, c - n//2),  hi = min((g+1) * N/G - 1, c + n//2)
        b[c] = a[c] / (k + alpha * sum_{c'=lo}^{hi} a[c']^2) ** beta

    which is what each GPU of the paper computes: the sum runs over "n
    'adjacent' kernel maps at the same spatial position", and a GPU holds
    only its own half of the maps. groups=1 is the formula above.

    Two other conventions, for anyone porting weights or numbers:
    - PyTorch's `nn.LocalResponseNorm(size, alpha, beta, k)` divides alpha by
      the size: its `alpha=1e-4, size=5` equals this layer's `alpha=2e-5`.
      For an even size its window is asymmetric (size//2 before, (size-1)//2
      after the channel).
    - `tf.nn.local_response_normalization` takes a radius, `depth_radius =
      n // 2`, and calls k `bias`; alpha is not divided. This layer calls it on
      the TensorFlow backend (one fused op, with its own gradient).

    The sum of squares is computed in float32 whatever the input dtype: the
    fused op has no bfloat16 kernel, and squared activations overflow float16.
    The output has the input's dtype.

    Args:
        size: n, the number of channels summed over (odd in the paper).
        alpha: scale of the sum of squares.
        beta: exponent.
        k: additive constant (the paper's k, TensorFlow's bias).
        groups: number of consecutive channel groups normalised separately
            (2 for the two-tower AlexNet); must divide the channel count.
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0, groups=1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer. Received: size={size}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0. Received: alpha={alpha}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0. Received: beta={beta}")
        if k <= 0 and alpha == 0:
            raise ValueError(f"k must be positive when alpha is 0. Received: k={k}")
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"groups must be a positive integer. Received: groups={groups}")
        self.groups = groups
        self.size = size
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is not None and channels % self.groups:
            raise ValueError(
                f"groups must divide the {channels} input channels. Received: groups={self.groups}"
            )

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        if self.groups == 1:
            y = self._normalize(x)
        else:
            # Each group alone: its window never reaches a neighbouring group.
            y = ops.concatenate([self._normalize(g) for g in ops.split(x, self.groups, axis=-1)], axis=-1)
        return ops.cast(y, inputs.dtype)

    def _normalize(self, x):
        radius = self.size // 2
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            y = tf.nn.local_response_normalization(
                x, depth_radius=radius, bias=self.k, alpha=self.alpha, beta=self.beta
            )
        else:
            y = x / ops.power(self.k + self.alpha * self._window_sum(ops.square(x), radius), self.beta)
        return y

    @staticmethod
    def _window_sum(squares, radius):
        """sum over channels c-radius..c+radius, clipped at the edges (zero padding)."""
        channels = squares.shape[-1]
        padded = ops.pad(squares, [[0, 0]] * (len(squares.shape) - 1) + [[radius, radius]])
        return sum(padded[..., i : i + channels] for i in range(2 * radius + 1))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k,
                "groups": self.groups}
