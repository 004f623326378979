"""The exact GELU as a layer whose training pass is one fused loop each way in TensorFlow."""

import functools
import math

import keras

from kerascnn.layers.conv2d import _gpus_visible

SQRT_HALF = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@functools.cache
def _fused_functions():
    """The forward and the input gradient, each an XLA-compiled element-wise loop computing in float32."""
    import tensorflow as tf

    @tf.function(jit_compile=True)
    def forward(x):
        f = tf.cast(x, tf.float32)
        return tf.cast(f * (0.5 * (1.0 + tf.math.erf(f * SQRT_HALF))), x.dtype)

    @tf.function(jit_compile=True)
    def backward(x, dy):
        f = tf.cast(x, tf.float32)
        cdf = 0.5 * (1.0 + tf.math.erf(f * SQRT_HALF))
        pdf = tf.exp(-0.5 * f * f) * INV_SQRT_2PI
        return tf.cast(tf.cast(dy, tf.float32) * (cdf + f * pdf), dy.dtype)

    @tf.custom_gradient
    def gelu(x):
        return forward(x), lambda dy: backward(x, dy)

    return gelu


@keras.saving.register_keras_serializable(package="kerascnn")
class GELU(keras.layers.Layer):
    """Gaussian error linear unit, exact (Hendrycks & Gimpel 2016): y = x Phi(x) = x / 2 (1 + erf(x / sqrt(2))).

    The same function as `keras.activations.gelu` (approximate=False) and
    PyTorch's `nn.GELU()`. Keras computes it, and TensorFlow differentiates
    it, as a chain of element-wise kernels, each a pass over the activations:
    on airbench94's 31x31x24 map at batch 1024 in bfloat16 the forward and
    backward took 285 ms, and GELU was half of that network's training step
    on a 2-core CPU (benchmarks/NOTES.md 54). Here, on the TensorFlow backend
    on a CPU and in training, the forward and the gradient

        dy/dx = Phi(x) + x phi(x),   phi(x) = exp(-x^2 / 2) / sqrt(2 pi)

    are each one XLA-compiled loop computing in float32 (55 ms for that map).
    Inference, other backends and GPUs take Keras' own `gelu`, so exported
    graphs hold only standard TensorFlow ops.
    """

    def call(self, inputs, training=None):
        if training and keras.backend.backend() == "tensorflow" and not _gpus_visible():
            return _fused_functions()(inputs)
        return keras.activations.gelu(inputs, approximate=False)

    def compute_output_shape(self, input_shape):
        return input_shape
