"""Batch normalisation through TensorFlow's fused kernel (Ioffe & Szegedy 2015)."""

import keras

# The input dtypes FusedBatchNormV3 has kernels for (its statistics, scale and offset are float32).
_FUSED_DTYPES = ("float32", "bfloat16", "float16")


@keras.saving.register_keras_serializable(package="kerascnn")
class BatchNormalization(keras.layers.BatchNormalization):
    """Keras' `BatchNormalization`, computed by TensorFlow's `FusedBatchNormV3` where it can be.

    Ioffe & Szegedy 2015, "Batch Normalization: Accelerating Deep Network
    Training by Reducing Internal Covariate Shift", Algorithm 1, per channel c
    over the N*H*W values of a batch:

        mu = mean(x),  sigma^2 = mean((x - mu)^2),
        y = gamma * (x - mu) / sqrt(sigma^2 + epsilon) + beta

    and at inference the same with the moving averages of mu and sigma^2.

    Keras 3 computes this on TensorFlow as separate ops (a cast to float32,
    `tf.nn.moments`, `tf.nn.batch_normalization`, a cast back) with their
    autodiff gradients: several passes over every activation each way.
    `FusedBatchNormV3` does the forward in one op and the backward in one
    (`FusedBatchNormGradV3`), reading bfloat16 directly with float32
    statistics. Measured on a 2-core AVX512-BF16 CPU (benchmarks/NOTES.md 16b,
    batch 128, 32x32): the layer's own forward + backward 3.4-4.1x faster;
    a whole training step of vgg16_bn 1.14-1.17x and of resnet18 1.28-1.29x
    faster in mixed_bfloat16, 1.06-1.11x and 1.03-1.09x in float32.

    The fused op is used on the TensorFlow backend for 4-D channels-last
    input (axis -1 or 3) in float32, bfloat16 or float16, without a mask,
    `synchronized` or `renorm`; everything else is Keras' own `call`. The
    weights, their names and order, the config and the arguments are Keras'.

    Moving statistics follow Keras: moving = momentum * moving + (1 -
    momentum) * batch statistic, with the biased batch variance sigma^2
    above. The fused op returns the unbiased one, sigma^2 * n / (n - 1) with
    n = N*H*W (as `tf.compat.v1` Keras averaged), so it is multiplied back by
    (n - 1) / n here; only float rounding differs from Keras' update.

    The class is called `BatchNormalization`, like Keras', on purpose: Keras
    keys each layer's weights in a `.weights.h5` file (`save_weights`,
    BackupAndRestore's `latest.weights.h5`) by its snake-case class name, so
    with the same name weight files written by models with Keras' layer load
    into models with this one and back. `.keras` files record it as
    `kerascnn>BatchNormalization`; loading them needs `kerascnn.layers`
    imported, as for the other custom layers.
    """

    def _fusable(self, inputs, mask):
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and not self.synchronized  # global statistics across replicas: Keras' all-reduce
            and not self.renorm
            and self.compute_dtype in _FUSED_DTYPES
            and self.variable_dtype == "float32"
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = tf.cast(inputs, self.compute_dtype)
        channels = x.shape[-1]
        scale = self.gamma if self.scale else tf.ones((channels,), "float32")
        offset = self.beta if self.center else tf.zeros((channels,), "float32")
        # Keras' rule: batch statistics only when training a trainable layer
        # (a frozen one, as in fine-tuning, normalises with its moving statistics).
        if training and self.trainable:
            # No running statistics in: the moving averages are updated below, Keras' way.
            empty = tf.zeros((0,), "float32")
            y, mean, unbiased_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=scale, offset=offset, mean=empty, variance=empty,
                epsilon=self.epsilon, is_training=True, data_format="NHWC",
            )
            n = tf.cast(tf.size(x, out_type=tf.int64) // channels, "float32")
            # Bessel's correction undone: Keras averages the biased variance.
            # (For n = 1 both are 0, and so is this.)
            variance = unbiased_variance * ((n - 1.0) / n)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
            )
            return y
        return tf.raw_ops.FusedBatchNormV3(
            x=x, scale=scale, offset=offset, mean=self.moving_mean, variance=self.moving_variance,
            epsilon=self.epsilon, is_training=False, data_format="NHWC",
        )[0]
